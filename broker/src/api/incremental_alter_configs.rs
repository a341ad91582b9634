//! IncrementalAlterConfigs (KIP-339) for topic resources: SET and DELETE,
//! validated and persisted by the controller in the image; brokers re-resolve
//! the topic's settings on their live logs when the image arrives. APPEND /
//! SUBTRACT and broker resources (dynamic broker configs) are refused with
//! INVALID_REQUEST.

use super::create_partitions::topic_admin;
use crate::controller::state::TopicCommand;
use crate::server::heartbeat::heartbeat_once;
use crate::server::BrokerShared;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::sync::Arc;

/// ConfigResource.Type.TOPIC.
pub const RESOURCE_TOPIC: i8 = 2;
/// ConfigResource.Type.BROKER.
pub const RESOURCE_BROKER: i8 = 4;
/// AlterConfigOp.OpType.
pub const OP_SET: i8 = 0;
pub const OP_DELETE: i8 = 1;

pub async fn handle(shared: &Arc<BrokerShared>, req: IncrementalAlterConfigsRequest) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(req.resources.len());
    for r in req.resources {
        let (code, message) = if r.resource_type != RESOURCE_TOPIC {
            (ResponseError::InvalidRequest.code(), Some("only topic configs can be altered".to_string()))
        } else {
            let mut ops = Vec::with_capacity(r.configs.len());
            let mut bad = None;
            for c in &r.configs {
                match c.config_operation {
                    OP_SET => ops.push((c.name.to_string(), Some(c.value.as_ref().map(|v| v.to_string()).unwrap_or_default()))),
                    OP_DELETE => ops.push((c.name.to_string(), None)),
                    op => bad = Some(format!("config operation {op} on {} is not supported", c.name.as_str())),
                }
            }
            match bad {
                Some(m) => (ResponseError::InvalidRequest.code(), Some(m)),
                None => {
                    let cmd = TopicCommand::AlterConfigs { topic: r.resource_name.to_string(), ops, validate_only: req.validate_only };
                    topic_admin(shared, cmd).await
                }
            }
        };
        responses.push(
            AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_error_message(message.map(StrBytes::from_string))
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name),
        );
    }
    let _ = heartbeat_once(shared, &BTreeMap::new()).await;
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
