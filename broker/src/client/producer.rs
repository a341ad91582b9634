//! The producer: one record per send, as a record batch v2 (no
//! compression) in a Produce v9 request to the partition's leader.
//!
//! A send runs the interceptors' `on_send` (Kafka's ProducerInterceptor),
//! encodes the record, picks its partition (built-in KIP-794 partitioning,
//! `partitioner.class` or a custom `Partitioner`) unless the record names
//! one, sends it, and runs `on_acknowledgement` before returning. Concurrent
//! sends are independent requests: only sends awaited one after another
//! keep their order within a partition.
//!
//! Retriable errors and network errors are retried after retry.backoff.ms
//! with a metadata refresh, until `retries` produce attempts have been
//! retried or delivery.timeout.ms since `send` began has passed. A failed
//! send says whether the record may have been written (`indefinite`).
//! Batching, linger and idempotence are later issues.

use super::config::{PartitionerChoice, ProducerConfig};
use super::error::{ClientError, SendError, PRODUCE_DEFINITE_CODES};
use super::interceptor::{run_on_acknowledgement, run_on_send, ProducerRecord};
use super::metadata::{is_stale_metadata_code, Cluster};
use super::network::{Pool, Request};
use super::partitioner::{BuiltInPartitioner, Partitioner, RandomPartitioner, RoundRobinPartitioner};
use crate::log::batch::HEADER_LEN;
use bytes::{Bytes, BytesMut};
use indexmap::IndexMap;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, RequestKind, ResponseKind, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

pub const PRODUCE_VERSION: i16 = 9;
/// MESSAGE_TOO_LARGE, used for batches over max.request.size (never sent).
const MESSAGE_TOO_LARGE: i16 = 10;

/// Where an acknowledged record landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    pub topic: String,
    pub partition: i32,
    /// -1 with acks=0 (the broker does not answer).
    pub offset: i64,
    /// The record's timestamp (create time, or the broker's log append time).
    pub timestamp: i64,
}

/// A producer shared by many tasks (`send` takes `&self`).
pub struct Producer {
    cluster: Cluster,
    config: ProducerConfig,
    /// Picks the partition of records sent without one.
    partitioner: ActivePartitioner,
}

/// The partitioner a producer instance uses (built from `config.partitioner`).
enum ActivePartitioner {
    /// Needs each record's size and the partitions with a leader.
    BuiltIn(Box<BuiltInPartitioner>),
    Class(Arc<dyn Partitioner>),
}

/// One failed attempt, classified.
struct AttemptError {
    error: ClientError,
    /// The error code when a broker answered.
    code: Option<i16>,
    /// Whether this attempt may have appended the record.
    maybe_written: bool,
    /// Whether a produce request was handed to the network (counts toward `retries`).
    sent: bool,
}

impl Producer {
    pub fn new(bootstrap: Vec<SocketAddr>, config: ProducerConfig) -> Producer {
        let pool = Pool::new(config.network.clone());
        let seed = config.seed.unwrap_or_else(madsim::rand::random::<u64>);
        let partitioner = match &config.partitioner {
            PartitionerChoice::BuiltIn => {
                ActivePartitioner::BuiltIn(Box::new(BuiltInPartitioner::new(config.batch_size, config.partitioner_ignore_keys, seed)))
            }
            PartitionerChoice::RoundRobin => ActivePartitioner::Class(Arc::new(RoundRobinPartitioner::new())),
            PartitionerChoice::Random => ActivePartitioner::Class(Arc::new(RandomPartitioner::new(seed))),
            PartitionerChoice::Custom(p) => ActivePartitioner::Class(p.clone()),
        };
        Producer { cluster: Cluster::new(bootstrap, pool), config, partitioner }
    }

    pub fn config(&self) -> &ProducerConfig {
        &self.config
    }

    /// Sends one record and waits for its acknowledgement (per `acks`).
    pub async fn send(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: Option<Bytes>,
        value: Option<Bytes>,
    ) -> Result<RecordMetadata, SendError> {
        self.send_record(ProducerRecord { topic: topic.to_string(), partition, key, value }).await
    }

    /// `send` taking a `ProducerRecord`.
    pub async fn send_record(&self, record: ProducerRecord) -> Result<RecordMetadata, SendError> {
        let record = run_on_send(&self.config.interceptors.0, record);
        self.send_intercepted(record).await
    }

    /// Kafka's `send(record, callback)`: runs the interceptors' `on_send`
    /// now (in the caller's order, as Kafka does inside `send`), then sends
    /// in a spawned task and calls `callback` with the outcome after the
    /// interceptors' `on_acknowledgement`.
    pub fn send_with_callback(
        self: &Arc<Self>,
        record: ProducerRecord,
        callback: impl FnOnce(Result<RecordMetadata, SendError>) + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let record = run_on_send(&self.config.interceptors.0, record);
        let producer = self.clone();
        tokio::spawn(async move { callback(producer.send_intercepted(record).await) })
    }

    /// Sends a record `on_send` already saw; runs `on_acknowledgement` once.
    async fn send_intercepted(&self, record: ProducerRecord) -> Result<RecordMetadata, SendError> {
        let result = self.send_one(&record.topic, record.partition, record.key, record.value).await;
        run_on_acknowledgement(&self.config.interceptors.0, &result);
        result
    }

    async fn send_one(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: Option<Bytes>,
        value: Option<Bytes>,
    ) -> Result<RecordMetadata, SendError> {
        let deadline = Instant::now() + Duration::from_millis(self.config.delivery_timeout_ms);
        let timestamp = self.config.clock.now_ms();
        let batch = encode_record(key.clone(), value.clone(), timestamp).map_err(|e| SendError {
            indefinite: false,
            message: format!("cannot encode record: {e}"),
            error_code: None,
            attempts: 0,
        })?;
        if batch.len() > self.config.max_request_size {
            return Err(SendError {
                indefinite: false,
                message: format!("record batch of {} bytes exceeds max.request.size {}", batch.len(), self.config.max_request_size),
                error_code: Some(MESSAGE_TOO_LARGE),
                attempts: 0,
            });
        }
        let mut partition = partition;
        let mut attempts = 0u32;
        let mut maybe_written = false;
        loop {
            let result = match partition {
                Some(p) => self.attempt(topic, p, &batch, timestamp, deadline).await,
                None => match self.choose_partition(topic, key.as_deref(), value.as_deref(), batch.len()).await {
                    Ok((p, count)) if (0..count).contains(&p) => {
                        partition = Some(p);
                        continue;
                    }
                    Ok((p, count)) => {
                        return Err(SendError {
                            indefinite: false,
                            message: format!("partitioner chose partition {p} of {topic}, which has {count} partitions"),
                            error_code: None,
                            attempts,
                        });
                    }
                    Err(error) => Err(AttemptError { error, code: None, maybe_written: false, sent: false }),
                },
            };
            let e = match result {
                Ok(md) => return Ok(md),
                Err(e) => e,
            };
            attempts += e.sent as u32;
            maybe_written |= e.maybe_written;
            let retries_left = attempts <= self.config.retries;
            let backoff = Duration::from_millis(self.config.network.retry_backoff_ms);
            let time_left = Instant::now() + backoff < deadline;
            if e.error.is_retriable() && retries_left && time_left {
                tracing::debug!(topic, ?partition, attempts, "produce retry: {}", e.error);
                self.cluster.invalidate();
                tokio::time::sleep(backoff).await;
                continue;
            }
            let why = if !e.error.is_retriable() {
                String::new()
            } else if !retries_left {
                format!(" (retries exhausted: {})", self.config.retries)
            } else {
                format!(" (delivery.timeout.ms {} expired)", self.config.delivery_timeout_ms)
            };
            return Err(SendError {
                indefinite: maybe_written,
                message: format!("{}{why}", e.error),
                error_code: e.code,
                attempts,
            });
        }
    }

    /// The partition the configured partitioner picks for a record encoded
    /// in `batch_len` bytes, with the topic's partition count.
    async fn choose_partition(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        batch_len: usize,
    ) -> Result<(i32, i32), ClientError> {
        let partitions = self.cluster.partitions(topic).await?;
        let count = partitions.len() as i32;
        if count == 0 {
            return Err(ClientError::UnknownTopicOrPartition { topic: topic.to_string(), partition: -1 });
        }
        let p = match &self.partitioner {
            ActivePartitioner::BuiltIn(b) => {
                let available: Vec<i32> = (0..count).filter(|i| partitions[*i as usize].leader >= 0).collect();
                // The record's own bytes, without the one-record batch's header:
                // what it would add to a shared batch in Kafka's accumulator.
                let record_bytes = batch_len.saturating_sub(HEADER_LEN);
                b.partition(topic, key, record_bytes, &available, count)
            }
            ActivePartitioner::Class(c) => c.partition(topic, key, value, count),
        };
        Ok((p, count))
    }

    /// One produce request to the partition's current leader.
    async fn attempt(
        &self,
        topic: &str,
        partition: i32,
        batch: &Bytes,
        timestamp: i64,
        deadline: Instant,
    ) -> Result<RecordMetadata, AttemptError> {
        let not_sent = |error| AttemptError { error, code: None, maybe_written: false, sent: false };
        let leader = self.cluster.leader(topic, partition).await.map_err(not_sent)?;
        let request_timeout = Duration::from_millis(self.config.network.request_timeout_ms);
        let timeout = request_timeout.min(deadline.saturating_duration_since(Instant::now()));
        if timeout.is_zero() {
            return Err(not_sent(ClientError::Timeout(format!("delivery.timeout.ms {} expired", self.config.delivery_timeout_ms))));
        }
        let request = ProduceRequest::default()
            .with_acks(self.config.acks)
            .with_timeout_ms(request_timeout.as_millis().min(i32::MAX as u128) as i32)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(batch.clone()))])]);
        let expect_response = self.config.acks != 0;
        let result = self
            .cluster
            .pool
            .call(
                leader.addr,
                Request { api_key: ApiKey::Produce, version: PRODUCE_VERSION, body: RequestKind::Produce(request), expect_response },
                timeout,
            )
            .await;
        let resp = match result {
            Ok(Some(ResponseKind::Produce(r))) => r,
            Ok(None) => {
                return Ok(RecordMetadata { topic: topic.to_string(), partition, offset: -1, timestamp });
            }
            Ok(Some(_)) => return Err(self.sent_error(ClientError::Malformed("Produce: wrong response kind".into()))),
            Err(error) => return Err(self.sent_error(error)),
        };
        let found = resp
            .responses
            .iter()
            .filter(|t| t.name.0.as_str() == topic)
            .flat_map(|t| t.partition_responses.iter())
            .find(|p| p.index == partition);
        let Some(p) = found else {
            return Err(self.sent_error(ClientError::Malformed(format!("Produce response lacks {topic}-{partition}"))));
        };
        if p.error_code == 0 {
            if p.base_offset < 0 {
                return Err(self.sent_error(ClientError::Malformed(format!("Produce: no offset for {topic}-{partition}"))));
            }
            let timestamp = if p.log_append_time_ms >= 0 { p.log_append_time_ms } else { timestamp };
            return Ok(RecordMetadata { topic: topic.to_string(), partition, offset: p.base_offset, timestamp });
        }
        if is_stale_metadata_code(p.error_code) {
            self.cluster.invalidate();
        }
        let message = p.error_message.as_ref().map(|m| m.as_str());
        Err(AttemptError {
            error: ClientError::broker(p.error_code, format!("produce to {topic}-{partition}"), message),
            code: Some(p.error_code),
            maybe_written: !PRODUCE_DEFINITE_CODES.contains(&p.error_code),
            sent: true,
        })
    }

    /// Classifies a failure of a request that was handed to the network.
    fn sent_error(&self, error: ClientError) -> AttemptError {
        self.cluster.invalidate();
        let maybe_written = error.maybe_sent();
        AttemptError { error, code: None, maybe_written, sent: true }
    }
}

/// One record as a v2 record batch without compression, base offset 0.
pub fn encode_record(key: Option<Bytes>, value: Option<Bytes>, timestamp: i64) -> anyhow::Result<Bytes> {
    let record = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp,
        key,
        value,
        headers: IndexMap::new(),
    };
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions { version: 2, compression: Compression::None };
    RecordBatchEncoder::encode(&mut buf, [&record], &options)?;
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::validate;

    #[test]
    fn encoded_record_is_a_valid_v2_batch_the_broker_accepts() {
        let b = encode_record(Some(Bytes::from_static(b"k")), Some(Bytes::from_static(b"v")), 1234).unwrap();
        let h = validate(&b).expect("crc and framing");
        assert_eq!(h.base_offset, 0);
        assert_eq!(h.last_offset(), 0);
        assert_eq!(h.total_len(), b.len());
    }
}
