//! CreateTopics: forwarded to the controller (as KRaft brokers do); the
//! broker then pulls the new image so an immediate Metadata request sees it.

use crate::config::{defaults, Settings};
use crate::controller::rpc::{ControllerRequest, ControllerResponse};
use crate::controller::state::validate_create_topic;
use crate::server::heartbeat::{controller_call, heartbeat_once};
use crate::server::BrokerShared;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::sync::Arc;

pub async fn handle(shared: &Arc<BrokerShared>, req: CreateTopicsRequest, version: i16) -> CreateTopicsResponse {
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let name = t.name.0.to_string();
        let partitions = if t.num_partitions < 0 {
            shared.config.settings.i64_or("num.partitions", defaults::NUM_PARTITIONS) as i32
        } else {
            t.num_partitions
        };
        let rf = if t.replication_factor < 0 {
            shared.config.settings.i64_or("default.replication.factor", defaults::DEFAULT_REPLICATION_FACTOR) as i32
        } else {
            t.replication_factor as i32
        };
        let configs = Settings(
            t.configs
                .iter()
                .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
                .collect::<BTreeMap<_, _>>(),
        );
        let (code, message) = if !t.assignments.is_empty() {
            (ResponseError::InvalidRequest.code(), Some("manual replica assignment is not supported".to_string()))
        } else if req.validate_only {
            // Checked against this broker's image (the controller's may be newer).
            let image = shared.image.lock().unwrap().clone();
            match validate_create_topic(&image, &name, partitions, rf, &configs) {
                Ok(()) => (0, None),
                Err(e) => (e.code, Some(e.message)),
            }
        } else {
            let call = ControllerRequest::CreateTopic { name: name.clone(), partitions, replication_factor: rf, configs };
            match controller_call(shared, &call).await {
                Ok(ControllerResponse::CreateTopic { result: Ok(()) }) => (0, None),
                Ok(ControllerResponse::CreateTopic { result: Err(e) }) => (e.code, Some(e.message)),
                Ok(_) => (ResponseError::UnknownServerError.code(), Some("unexpected controller answer".into())),
                Err(e) => (ResponseError::RequestTimedOut.code(), Some(e.to_string())),
            }
        };
        let mut r = CreatableTopicResult::default().with_name(t.name).with_error_code(code);
        if version >= 1 {
            r = r.with_error_message(message.map(StrBytes::from_string));
        }
        if version >= 5 {
            r = r.with_num_partitions(partitions).with_replication_factor(rf as i16);
        }
        results.push(r);
    }
    let _ = heartbeat_once(shared, &BTreeMap::new()).await;
    CreateTopicsResponse::default().with_topics(results)
}
