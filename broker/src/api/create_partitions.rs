//! CreatePartitions (KIP-195): grows a topic, forwarded to the controller,
//! which places new replicas round-robin as CreateTopics does. Only
//! increases are allowed (INVALID_PARTITIONS otherwise); manual assignments
//! are refused (INVALID_REQUEST). The broker then pulls the new image so an
//! immediate Metadata request sees the new partitions.

use crate::controller::rpc::{ControllerRequest, ControllerResponse};
use crate::controller::state::TopicCommand;
use crate::server::heartbeat::{controller_call, heartbeat_once};
use crate::server::BrokerShared;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::sync::Arc;

pub async fn handle(shared: &Arc<BrokerShared>, req: CreatePartitionsRequest) -> CreatePartitionsResponse {
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let (code, message) = if t.assignments.as_ref().is_some_and(|a| !a.is_empty()) {
            (ResponseError::InvalidRequest.code(), Some("manual replica assignment is not supported".to_string()))
        } else {
            let cmd = TopicCommand::CreatePartitions { topic: t.name.0.to_string(), count: t.count, validate_only: req.validate_only };
            topic_admin(shared, cmd).await
        };
        results.push(
            CreatePartitionsTopicResult::default()
                .with_name(t.name)
                .with_error_code(code)
                .with_error_message(message.map(StrBytes::from_string)),
        );
    }
    let _ = heartbeat_once(shared, &BTreeMap::new()).await;
    CreatePartitionsResponse::default().with_results(results)
}

/// Sends one topic command to the controller: (error code, message).
pub async fn topic_admin(shared: &BrokerShared, cmd: TopicCommand) -> (i16, Option<String>) {
    match controller_call(shared, &ControllerRequest::TopicAdmin(cmd)).await {
        Ok(ControllerResponse::TopicAdmin { result: Ok(()) }) => (0, None),
        Ok(ControllerResponse::TopicAdmin { result: Err(e) }) => (e.code, Some(e.message)),
        Ok(_) => (ResponseError::UnknownServerError.code(), Some("unexpected controller answer".into())),
        Err(e) => (ResponseError::RequestTimedOut.code(), Some(e.to_string())),
    }
}
