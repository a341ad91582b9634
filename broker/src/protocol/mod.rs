//! Kafka wire protocol glue.
//!
//! # Format
//!
//! Every request and response is a frame: a 4-byte big-endian size followed
//! by that many bytes. A request frame starts with a request header
//! (api_key i16, api_version i16, correlation_id i32, client_id, and tagged
//! fields from header v2); a response frame starts with the correlation id
//! (plus tagged fields from header v1). Bodies are encoded and decoded by the
//! `kafka-protocol` crate. ApiVersions responses always use header v0
//! (KIP-511), whatever the request version.

pub mod codec;
pub mod frame;

pub use codec::{
    decode_request, decode_response, encode_request, encode_response, DecodedRequest,
    ProtocolError,
};
pub use frame::{read_frame, write_frame, MAX_FRAME_BYTES};
