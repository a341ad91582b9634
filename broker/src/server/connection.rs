//! One client connection: frames in, dispatch, frames out, in order.
//!
//! Malformed frames close the connection (never a panic); a request for an
//! unsupported ApiVersions version is answered with UNSUPPORTED_VERSION and a
//! v0 body (KIP-511); other unsupported versions close the connection, as
//! Kafka does.

use super::buggify;
use super::BrokerShared;
use crate::api;
use crate::protocol::{codec::ProtocolError, decode_request, encode_response, read_frame, write_frame};
use kafka_protocol::messages::{ApiKey, ResponseKind};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpStream;

pub async fn serve_connection(shared: Arc<BrokerShared>, mut stream: TcpStream, peer: SocketAddr) {
    loop {
        let frame = match read_frame(&mut stream).await {
            Ok(Some(f)) => f,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(broker = shared.config.id, %peer, "closing connection: {e}");
                return;
            }
        };
        let req = match decode_request(frame) {
            Ok(r) => r,
            Err(ProtocolError::UnsupportedVersion { api: ApiKey::ApiVersions, correlation_id, .. }) => {
                let body = ResponseKind::ApiVersions(api::api_versions::unsupported_version_response());
                let Ok(bytes) = encode_response(ApiKey::ApiVersions, 0, correlation_id, &body) else { return };
                if write_frame(&mut stream, &bytes).await.is_err() {
                    return;
                }
                continue;
            }
            Err(e) => {
                tracing::debug!(broker = shared.config.id, %peer, "bad request, closing: {e}");
                return;
            }
        };
        let version = req.header.request_api_version;
        let correlation_id = req.header.correlation_id;
        let api_key = req.api_key;
        if api_key == ApiKey::Produce {
            buggify::maybe_delay(buggify::SLOW_APPEND).await;
        }
        let Some(resp) = api::dispatch(&shared, req, peer).await else {
            continue; // acks=0 produce: no response
        };
        if api_key == ApiKey::Fetch {
            buggify::maybe_delay(buggify::SLOW_FETCH_RESPONSE).await;
        }
        if buggify::fires(buggify::SPURIOUS_CLOSE) {
            return;
        }
        let bytes = match encode_response(api_key, version, correlation_id, &resp) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(broker = shared.config.id, ?api_key, version, "cannot encode response: {e}");
                return;
            }
        };
        if write_frame(&mut stream, &bytes).await.is_err() {
            return;
        }
    }
}
