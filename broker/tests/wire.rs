//! Raw wire-protocol tests against one simulated broker: bad input gets an
//! error response or a closed connection, never a panic.
#![cfg(madsim)]

mod common;

use ksim_broker::protocol::{decode_response, encode_request, read_frame, write_frame};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, MetadataRequest, RequestKind, ResponseKind};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const BROKER: &str = "10.0.1.1:9092";
const CONTROLLER: &str = "10.0.2.1:9093";

/// Starts one controller and one broker; returns the client node.
fn start_cluster() -> madsim::runtime::NodeHandle {
    common::start_controller(CONTROLLER.parse().unwrap());
    common::start_broker(0, BROKER.parse().unwrap(), CONTROLLER.parse().unwrap());
    common::client_node("10.0.3.1")
}

async fn connect() -> TcpStream {
    for _ in 0..50 {
        if let Ok(s) = TcpStream::connect(BROKER).await {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("broker never listened");
}

#[madsim::test]
async fn malformed_frames_close_the_connection_and_the_broker_keeps_serving() {
    let client = start_cluster();
    client
        .spawn(async move {
            // A negative size prefix.
            let mut s = connect().await;
            s.write_all(&(-5i32).to_be_bytes()).await.unwrap();
            s.flush().await.unwrap();
            let r = tokio::time::timeout(Duration::from_secs(5), read_frame(&mut s)).await.unwrap();
            assert!(matches!(r, Ok(None) | Err(_)), "negative size must close: {r:?}");

            // A frame of garbage after a plausible header.
            let mut s = connect().await;
            write_frame(&mut s, &[0, 3, 0, 12, 0, 0, 0, 9, 0x7f, 0xff, 1]).await.unwrap();
            let r = tokio::time::timeout(Duration::from_secs(5), read_frame(&mut s)).await.unwrap();
            assert!(matches!(r, Ok(None) | Err(_)), "garbage must close: {r:?}");

            // An unknown api key.
            let mut s = connect().await;
            write_frame(&mut s, &[0x40, 0, 0, 0, 0, 0, 0, 1, 0, 0]).await.unwrap();
            let r = tokio::time::timeout(Duration::from_secs(5), read_frame(&mut s)).await.unwrap();
            assert!(matches!(r, Ok(None) | Err(_)), "unknown api must close: {r:?}");

            // The broker still answers a good request.
            let mut s = connect().await;
            let req = encode_request(ApiKey::Metadata, 12, 1, "t", &RequestKind::Metadata(MetadataRequest::default())).unwrap();
            write_frame(&mut s, &req).await.unwrap();
            let frame = read_frame(&mut s).await.unwrap().unwrap();
            let (cid, body) = decode_response(ApiKey::Metadata, 12, frame).unwrap();
            assert_eq!(cid, 1);
            assert!(matches!(body, ResponseKind::Metadata(_)));
        })
        .await
        .unwrap();
}

// KIP-511: a too-new ApiVersions request gets UNSUPPORTED_VERSION (35) in a v0 body.
#[madsim::test]
async fn kip_511_api_versions_too_new_gets_error_35_with_v0_body() {
    let client = start_cluster();
    client
        .spawn(async move {
            let mut s = connect().await;
            let mut req = encode_request(ApiKey::ApiVersions, 3, 7, "t", &RequestKind::ApiVersions(ApiVersionsRequest::default()))
                .unwrap()
                .to_vec();
            req[2..4].copy_from_slice(&99i16.to_be_bytes()); // claim version 99
            write_frame(&mut s, &req).await.unwrap();
            let frame = read_frame(&mut s).await.unwrap().unwrap();
            let (cid, body) = decode_response(ApiKey::ApiVersions, 0, frame).unwrap();
            assert_eq!(cid, 7);
            let ResponseKind::ApiVersions(v) = body else { panic!("not ApiVersions") };
            assert_eq!(v.error_code, 35);
            assert!(v.api_keys.iter().any(|k| k.api_key == ApiKey::Produce as i16));
        })
        .await
        .unwrap();
}
