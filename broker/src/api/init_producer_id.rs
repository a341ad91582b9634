//! InitProducerId: gives an idempotent producer its producer id (epoch 0).
//!
//! Ids come from blocks the controller quorum hands out (KIP-730
//! AllocateProducerIds over the controller RPC): the replicated image
//! records the next free id, so ids are unique across brokers, broker
//! restarts and controller failover. A broker uses its block up locally and
//! asks for the next one when it runs out; a restart abandons the rest of a
//! block (ids are plentiful, uniqueness is what matters).
//!
//! Kafka semantics kept (TransactionCoordinator.handleInitProducerId):
//! - `transactional_id` null: always a fresh producer id with epoch 0; the
//!   producer id/epoch fields of v3+ (KIP-360) are ignored.
//! - `transactional_id` empty: INVALID_REQUEST.
//! - A block that cannot be obtained (no active controller yet):
//!   COORDINATOR_LOAD_IN_PROGRESS, which clients retry.
//!
//! Not yet: transactional ids (a later issue brings the transaction
//! coordinator); until then they get UNSUPPORTED_VERSION, a non-retriable
//! error, rather than an id without fencing.

use crate::controller::rpc::{ControllerRequest, ControllerResponse};
use crate::server::heartbeat::controller_call;
use crate::server::BrokerShared;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use std::sync::Arc;

/// Versions this broker answers (v2+ are flexible; v3 adds KIP-360's
/// producer id/epoch, v5 is Kafka 3.x's latest before KIP-939's 2PC).
pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 5;

/// The producer id block a broker is using up: ids `next..end`.
#[derive(Debug, Default)]
pub struct ProducerIdBlockState {
    /// The next id to hand out.
    pub next: i64,
    /// One past the last id of the block (`next == end`: need a new block).
    pub end: i64,
}

/// The next unused producer id of this broker, asking the controller for a
/// block when the current one is used up. The async lock serialises callers
/// so one allocation serves them all.
pub async fn next_producer_id(shared: &Arc<BrokerShared>) -> Result<i64, ResponseError> {
    let mut block = shared.producer_ids.lock().await;
    if block.next >= block.end {
        let req = ControllerRequest::AllocateProducerIds { broker_id: shared.config.id, incarnation: shared.incarnation };
        match controller_call(shared, &req).await {
            Ok(ControllerResponse::AllocateProducerIds { result: Ok(b) }) if b.len > 0 && b.first >= block.end => {
                tracing::info!(broker = shared.config.id, first = b.first, len = b.len, "producer id block");
                *block = ProducerIdBlockState { next: b.first, end: b.first + b.len as i64 };
            }
            other => {
                tracing::info!(broker = shared.config.id, ?other, "no producer id block");
                return Err(ResponseError::CoordinatorLoadInProgress);
            }
        }
    }
    let id = block.next;
    block.next += 1;
    Ok(id)
}

pub async fn handle(shared: &Arc<BrokerShared>, req: InitProducerIdRequest) -> InitProducerIdResponse {
    let failed = |e: ResponseError| {
        InitProducerIdResponse::default().with_error_code(e.code()).with_producer_id(ProducerId(-1)).with_producer_epoch(-1)
    };
    match &req.transactional_id {
        None => {}
        Some(t) if t.0.is_empty() => return failed(ResponseError::InvalidRequest),
        Some(_) => return failed(ResponseError::UnsupportedVersion),
    }
    match next_producer_id(shared).await {
        Ok(id) => InitProducerIdResponse::default().with_producer_id(ProducerId(id)).with_producer_epoch(0),
        Err(e) => failed(e),
    }
}
