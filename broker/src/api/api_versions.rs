//! ApiVersions: which APIs and versions this broker speaks.

use super::SUPPORTED;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::ApiVersionsResponse;

pub fn handle() -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(
        SUPPORTED
            .iter()
            .map(|&(api, lo, hi)| ApiVersion::default().with_api_key(api as i16).with_min_version(lo).with_max_version(hi))
            .collect(),
    )
}

/// KIP-511: a too-new ApiVersions request gets error 35 and a v0 body
/// listing what we support, so the client can retry with a version we know.
pub fn unsupported_version_response() -> ApiVersionsResponse {
    handle().with_error_code(ResponseError::UnsupportedVersion.code())
}
