//! Request/response encoding around `kafka-protocol`'s generated messages.
//!
//! Decoding never panics on malformed input: short or garbled frames give a
//! `ProtocolError`, and the server answers with an error or closes the
//! connection.

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// Why a frame could not be understood.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("frame too short for a request header ({0} bytes)")]
    ShortFrame(usize),
    #[error("unknown api key {0}")]
    UnknownApiKey(i16),
    #[error("api {api:?} version {version} not supported")]
    UnsupportedVersion { api: ApiKey, version: i16, correlation_id: i32 },
    #[error("malformed {what}: {msg}")]
    Malformed { what: &'static str, msg: String },
}

/// A decoded request: its header, and its body unless the version is out of
/// range (the server answers those with UNSUPPORTED_VERSION).
#[derive(Debug)]
pub struct DecodedRequest {
    pub api_key: ApiKey,
    pub header: RequestHeader,
    pub body: RequestKind,
}

/// Peeks api key, version and correlation id without decoding anything else.
pub fn peek_header(frame: &[u8]) -> Result<(i16, i16, i32), ProtocolError> {
    if frame.len() < 8 {
        return Err(ProtocolError::ShortFrame(frame.len()));
    }
    let api_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    Ok((api_key, version, correlation_id))
}

/// Decodes a request frame (without its size prefix).
pub fn decode_request(frame: Bytes) -> Result<DecodedRequest, ProtocolError> {
    let (key, version, correlation_id) = peek_header(&frame)?;
    let api_key = ApiKey::try_from(key).map_err(|_| ProtocolError::UnknownApiKey(key))?;
    let range = api_key.valid_versions();
    if version < range.min || version > range.max {
        return Err(ProtocolError::UnsupportedVersion { api: api_key, version, correlation_id });
    }
    let mut buf = frame;
    let header_version = api_key.request_header_version(version);
    let header = RequestHeader::decode(&mut buf, header_version)
        .map_err(|e| ProtocolError::Malformed { what: "request header", msg: e.to_string() })?;
    let body = RequestKind::decode(api_key, &mut buf, version)
        .map_err(|e| ProtocolError::Malformed { what: "request body", msg: e.to_string() })?;
    Ok(DecodedRequest { api_key, header, body })
}

/// Encodes a response frame body (without the size prefix).
pub fn encode_response(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
) -> anyhow::Result<Bytes> {
    let mut buf = BytesMut::new();
    // KIP-511: ApiVersions responses always carry header v0.
    let header_version = if api_key == ApiKey::ApiVersions {
        0
    } else {
        api_key.response_header_version(version)
    };
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, header_version)?;
    body.encode(&mut buf, version)?;
    Ok(buf.freeze())
}

/// Encodes a request frame body (without the size prefix).
pub fn encode_request(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: &str,
    body: &RequestKind,
) -> anyhow::Result<Bytes> {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_string(client_id.to_string())))
        .encode(&mut buf, api_key.request_header_version(version))?;
    body.encode(&mut buf, version)?;
    Ok(buf.freeze())
}

/// Decodes a response frame for a request we sent with `api_key`/`version`.
/// Returns the correlation id and the body.
pub fn decode_response(
    api_key: ApiKey,
    version: i16,
    frame: Bytes,
) -> Result<(i32, ResponseKind), ProtocolError> {
    let mut buf = frame;
    let header_version = if api_key == ApiKey::ApiVersions {
        0
    } else {
        api_key.response_header_version(version)
    };
    if buf.remaining() < 4 {
        return Err(ProtocolError::ShortFrame(buf.remaining()));
    }
    let header = ResponseHeader::decode(&mut buf, header_version)
        .map_err(|e| ProtocolError::Malformed { what: "response header", msg: e.to_string() })?;
    let body = ResponseKind::decode(api_key, &mut buf, version)
        .map_err(|e| ProtocolError::Malformed { what: "response body", msg: e.to_string() })?;
    Ok((header.correlation_id, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiVersionsRequest, MetadataRequest};

    #[test]
    fn request_round_trips_through_encode_and_decode() {
        let body = RequestKind::Metadata(MetadataRequest::default());
        let frame = encode_request(ApiKey::Metadata, 12, 7, "c1", &body).unwrap();
        let req = decode_request(frame).unwrap();
        assert_eq!(req.api_key, ApiKey::Metadata);
        assert_eq!(req.header.correlation_id, 7);
        assert_eq!(req.header.client_id.as_ref().map(|s| s.as_str()), Some("c1"));
    }

    #[test]
    fn short_or_garbage_frames_are_errors_not_panics() {
        assert!(matches!(decode_request(Bytes::from_static(&[0, 1])), Err(ProtocolError::ShortFrame(2))));
        assert!(matches!(
            decode_request(Bytes::from_static(&[0x7f, 0x7f, 0, 0, 0, 0, 0, 1])),
            Err(ProtocolError::UnknownApiKey(_))
        ));
        // A Metadata v12 header claiming a huge client id length.
        let garbage = Bytes::from_static(&[0, 3, 0, 12, 0, 0, 0, 1, 0x7f, 0xff, 1, 2, 3]);
        assert!(decode_request(garbage).is_err());
        let _ = ApiVersionsRequest::default();
    }
}
