//! The producer: Kafka's `KafkaProducer` with its record accumulator and
//! sender (`accumulator.rs` holds the state; this file does the I/O).
//!
//! A send runs the interceptors' `on_send` (Kafka's ProducerInterceptor),
//! picks the record's partition (built-in KIP-794 partitioning,
//! `partitioner.class` or a custom `Partitioner`) unless the record names
//! one, waits up to `max.block.ms` for the topic's metadata and for
//! `buffer.memory` space, and appends the record to its partition's open
//! batch. The send completes when its batch is acknowledged (offset = the
//! batch's base offset + the record's index) or fails; `on_acknowledgement`
//! runs before the caller (or the callback) sees the outcome.
//!
//! One sender task per producer (started on the first send) expires
//! batches past `delivery.timeout.ms`, asks the accumulator which brokers
//! have sendable batches, and sends one Produce request per broker with at
//! most one batch per partition, up to `max.in.flight.requests.per.connection`
//! requests per broker. Each request runs in its own task and reports every
//! batch's outcome back to the accumulator, which retries (after a KIP-580
//! backoff, with a metadata refresh on stale-leader errors) or completes it.
//! With idempotence the sender first gets a producer id (InitProducerId).
//!
//! A failed send says whether its record may have been written (`indefinite`).

use super::accumulator::{
    record_size, Accumulator, AccumulatorConfig, AppendRefused, BatchOutcome, PendingRecord, ProducerIdEpoch, Tp,
};
use super::config::{PartitionerChoice, ProducerConfig};
use super::error::{ClientError, SendError, SendErrorKind};
use super::interceptor::{run_on_acknowledgement, run_on_send, ProducerRecord};
use super::metadata::{is_stale_metadata_code, Cluster, Leader};
use super::network::{Pool, Request};
use super::partitioner::{BuiltInPartitioner, Partitioner, RandomPartitioner, RoundRobinPartitioner};
use crate::log::batch::HEADER_LEN;
use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, InitProducerIdRequest, ProduceRequest, ProduceResponse, RequestKind, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;

pub const PRODUCE_VERSION: i16 = 9;
/// InitProducerId v4 (flexible; KIP-360's producer id/epoch fields unused
/// by a non-transactional producer).
pub const INIT_PRODUCER_ID_VERSION: i16 = 4;
/// MESSAGE_TOO_LARGE, used for records over max.request.size (never sent).
const MESSAGE_TOO_LARGE: i16 = 10;
/// INVALID_RECORD, used for a batch that cannot be encoded (never sent).
const INVALID_RECORD: i16 = 87;
/// The sender wakes at least this often while it holds batches, to look
/// at metadata age and idle connections.
const SENDER_TICK: Duration = Duration::from_millis(1000);

/// Where an acknowledged record landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    pub topic: String,
    pub partition: i32,
    /// -1 with acks=0 (the broker does not answer) and for a batch the
    /// broker reported as a duplicate of one it no longer has offsets for.
    pub offset: i64,
    /// The record's timestamp (create time, or the broker's log append time).
    pub timestamp: i64,
}

/// A producer shared by many tasks (`send` takes `&self`).
pub struct Producer {
    inner: Arc<Inner>,
    /// Picks the partition of records sent without one.
    partitioner: ActivePartitioner,
}

/// What the producer, its sender task and its request tasks share.
struct Inner {
    cluster: Cluster,
    config: ProducerConfig,
    acc: Mutex<Accumulator>,
    /// Wakes the sender (new batch, completion, metadata, close).
    wake: Arc<Notify>,
    /// Wakes sends waiting for buffer space and flushes waiting for batches.
    progress: Notify,
    sender_started: AtomicBool,
    /// A metadata refresh task is running.
    refreshing: AtomicBool,
    /// An InitProducerId task is running.
    initialising: AtomicBool,
    /// The sender exits once the accumulator is empty.
    shutdown: AtomicBool,
    /// `send_with_callback` order: (tickets issued, tickets appended).
    /// Calls that cannot append at once take a ticket and append in ticket
    /// order, so callbacks-style sends keep their call order as Kafka's
    /// blocking `send` does.
    tickets: Mutex<(u64, u64)>,
    /// Wakes ticket holders when the appended count moves.
    turn: Notify,
}

/// The partitioner a producer instance uses (built from `config.partitioner`).
enum ActivePartitioner {
    /// Needs each record's size and the partitions with a leader.
    BuiltIn(Box<BuiltInPartitioner>),
    Class(Arc<dyn Partitioner>),
}

fn definite(message: impl Into<String>, error_code: Option<i16>) -> SendError {
    SendError { indefinite: false, message: message.into(), error_code, attempts: 0, kind: SendErrorKind::Failed }
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
        let acc_config = AccumulatorConfig {
            batch_size: config.batch_size,
            linger: Duration::from_millis(config.linger_ms),
            buffer_memory: config.buffer_memory,
            max_request_size: config.max_request_size,
            delivery_timeout: Duration::from_millis(config.delivery_timeout_ms),
            retries: config.retries,
            retry_backoff: Duration::from_millis(config.network.retry_backoff_ms),
            retry_backoff_max: Duration::from_millis(config.retry_backoff_max_ms),
            max_in_flight: config.max_in_flight,
            idempotent: config.enable_idempotence,
            acks: config.acks,
            compression: config.compression,
        };
        // The backoff jitter's rng, apart from the partitioner's draws.
        let acc = Accumulator::new(acc_config, ChaCha8Rng::seed_from_u64(seed ^ 0x6a09_e667_f3bc_c908));
        let inner = Arc::new(Inner {
            cluster: Cluster::new(bootstrap, pool),
            config,
            acc: Mutex::new(acc),
            wake: Arc::new(Notify::new()),
            progress: Notify::new(),
            sender_started: AtomicBool::new(false),
            refreshing: AtomicBool::new(false),
            initialising: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            tickets: Mutex::new((0, 0)),
            turn: Notify::new(),
        });
        Producer { inner, partitioner }
    }

    pub fn config(&self) -> &ProducerConfig {
        &self.inner.config
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
        let record = run_on_send(&self.inner.config.interceptors.0, record);
        let pending = self.enqueue(record).await;
        self.acknowledged(pending).await
    }

    /// Kafka's `send(record, callback)`: runs the interceptors' `on_send`
    /// now and, when the partition's metadata is known and the buffer has
    /// room, appends the record before returning (so records sent this way
    /// one after another keep their order); the rest happens in a spawned
    /// task, which calls `callback` with the outcome after the interceptors'
    /// `on_acknowledgement`.
    pub fn send_with_callback(
        self: &Arc<Self>,
        record: ProducerRecord,
        callback: impl FnOnce(Result<RecordMetadata, SendError>) + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let record = run_on_send(&self.inner.config.interceptors.0, record);
        let appended = {
            let mut tickets = self.inner.tickets.lock().unwrap();
            // Only when no earlier call still waits to append.
            let now = if tickets.0 == tickets.1 { self.try_enqueue_now(record) } else { Err(record) };
            now.map_err(|record| {
                tickets.0 += 1;
                (record, tickets.0 - 1)
            })
        };
        let producer = self.clone();
        tokio::spawn(async move {
            let pending = match appended {
                Ok(pending) => pending,
                Err((record, ticket)) => producer.enqueue_in_turn(record, ticket).await,
            };
            callback(producer.acknowledged(pending).await)
        })
    }

    /// Sends every record appended so far and waits until each completed
    /// (acknowledged or failed), as Kafka's `flush`.
    pub async fn flush(&self) {
        let waiting = {
            let mut acc = self.inner.acc.lock().unwrap();
            acc.flush_begin();
            acc.incomplete_batches()
        };
        let _done = FlushGuard(&self.inner);
        self.inner.wake.notify_one();
        self.inner.wait_progress(|acc| acc.incomplete_batches().is_disjoint(&waiting)).await;
    }

    /// Kafka's `close()`: refuses new sends, sends everything appended and
    /// waits for it to complete, then stops the sender.
    pub async fn close(&self) {
        self.inner.acc.lock().unwrap().close();
        self.inner.wake.notify_one();
        self.inner.wait_progress(|acc| acc.is_empty()).await;
        self.stop_sender();
    }

    /// Kafka's `close(Duration)`: refuses new sends and waits up to
    /// `timeout` for every appended record to complete; records still
    /// queued or in flight then fail at once with
    /// [`SendErrorKind::ProducerClosed`] (indefinite for those in flight:
    /// the broker may have them), and the sender stops without waiting for
    /// answers. `Duration::ZERO` aborts at once without waiting. Returns
    /// how many records were aborted (0: everything completed in time).
    pub async fn close_with_timeout(&self, timeout: Duration) -> usize {
        self.inner.acc.lock().unwrap().close();
        self.inner.wake.notify_one();
        if !timeout.is_zero() {
            let _ = tokio::time::timeout(timeout, self.inner.wait_progress(|acc| acc.is_empty())).await;
        }
        let aborted = self
            .inner
            .acc
            .lock()
            .unwrap()
            .abort_incomplete(&format!("producer closed forcefully: close timeout of {} ms ran out", timeout.as_millis()));
        if aborted > 0 {
            tracing::debug!(aborted, "producer close timed out; records aborted");
        }
        self.stop_sender();
        aborted
    }

    /// Lets the sender exit and wakes everyone waiting on the producer.
    fn stop_sender(&self) {
        self.inner.shutdown.store(true, Ordering::SeqCst);
        self.inner.wake.notify_one();
        self.inner.progress.notify_waiters();
    }

    /// Bytes of records held (for buffer.memory tests).
    pub fn buffer_used(&self) -> usize {
        self.inner.acc.lock().unwrap().buffer_used()
    }

    /// The most Produce requests this producer ever had outstanding to one
    /// broker (bounded by max.in.flight.requests.per.connection).
    pub fn peak_in_flight(&self) -> usize {
        self.inner.acc.lock().unwrap().peak_node_in_flight()
    }

    /// The compression ratio estimate batches of `topic` are sized by
    /// (Kafka's CompressionRatioEstimator; 1.0 without compression).
    pub fn compression_ratio(&self, topic: &str) -> f32 {
        self.inner.acc.lock().unwrap().compression_ratio(topic)
    }

    /// The idempotent producer's id and epoch, once known.
    pub fn producer_id(&self) -> Option<(i64, i16)> {
        self.inner.acc.lock().unwrap().producer().map(|p| (p.producer_id, p.epoch))
    }

    /// Open broker connections (for connections.max.idle.ms tests).
    pub fn open_connections(&self) -> usize {
        self.inner.cluster.pool.open_connections()
    }

    /// Waits for the outcome of an enqueued record; runs `on_acknowledgement` once.
    async fn acknowledged(&self, pending: Result<oneshot::Receiver<Result<RecordMetadata, SendError>>, SendError>) -> Result<RecordMetadata, SendError> {
        let result = match pending {
            Err(e) => Err(e),
            Ok(rx) => rx.await.unwrap_or_else(|_| {
                Err(SendError {
                    indefinite: true,
                    message: "producer dropped before the send completed".into(),
                    error_code: None,
                    attempts: 0,
                    kind: SendErrorKind::ProducerClosed,
                })
            }),
        };
        run_on_acknowledgement(&self.inner.config.interceptors.0, &result);
        result
    }

    /// Appends at once if metadata and buffer space allow; gives the record
    /// back otherwise (errors too are left to `enqueue`).
    fn try_enqueue_now(&self, record: ProducerRecord) -> Result<Result<oneshot::Receiver<Result<RecordMetadata, SendError>>, SendError>, ProducerRecord> {
        let Some(partitions) = self.inner.cluster.cached_partitions(&record.topic) else { return Err(record) };
        let size = record_size(record.key.as_deref(), record.value.as_deref());
        if self.check_size(size).is_err() {
            return Err(record);
        }
        let partition = match self.choose_partition(&record, &partitions, size) {
            Ok(p) => p,
            Err(_) => return Err(record),
        };
        let tp = (record.topic.clone(), partition);
        let (tx, rx) = oneshot::channel();
        let pending = PendingRecord { key: record.key.clone(), value: record.value.clone(), timestamp: self.inner.config.clock.now_ms(), size, done: tx };
        match self.inner.append(tp, pending) {
            Ok(()) => Ok(Ok(rx)),
            // Partitioned once: the slow path keeps this choice.
            Err(_) => Err(record.with_partition(partition)),
        }
    }

    /// `enqueue` once every earlier ticket has appended (or failed).
    async fn enqueue_in_turn(&self, record: ProducerRecord, ticket: u64) -> Result<oneshot::Receiver<Result<RecordMetadata, SendError>>, SendError> {
        loop {
            let notified = self.inner.turn.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.inner.tickets.lock().unwrap().1 == ticket {
                break;
            }
            notified.await;
        }
        let result = self.enqueue(record).await;
        self.inner.tickets.lock().unwrap().1 += 1;
        self.inner.turn.notify_waiters();
        result
    }

    /// Partitions the record (waiting for metadata up to max.block.ms) and
    /// appends it (waiting for buffer space up to max.block.ms).
    async fn enqueue(&self, record: ProducerRecord) -> Result<oneshot::Receiver<Result<RecordMetadata, SendError>>, SendError> {
        let inner = &self.inner;
        let deadline = Instant::now() + Duration::from_millis(inner.config.max_block_ms);
        let size = record_size(record.key.as_deref(), record.value.as_deref());
        self.check_size(size)?;
        let partitions = inner.wait_for_metadata(&record.topic, deadline).await?;
        let partition = self.choose_partition(&record, &partitions, size)?;
        let (tx, rx) = oneshot::channel();
        let timestamp = inner.config.clock.now_ms();
        let mut pending = PendingRecord { key: record.key, value: record.value, timestamp, size, done: tx };
        let tp = (record.topic, partition);
        loop {
            let notified = inner.progress.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match inner.append(tp.clone(), pending) {
                Ok(()) => return Ok(rx),
                Err((AppendRefused::Closed, _)) => {
                    return Err(SendError { kind: SendErrorKind::ProducerClosed, ..definite("producer is closed", None) })
                }
                Err((AppendRefused::BufferFull, back)) => pending = back,
            }
            // Batches become sendable at once while someone waits for space.
            inner.acc.lock().unwrap().space_wait_begin();
            inner.wake.notify_one();
            let waited = tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), notified).await;
            inner.acc.lock().unwrap().space_wait_done();
            if waited.is_err() {
                let message = format!("failed to allocate {size} bytes of buffer.memory within max.block.ms {}", inner.config.max_block_ms);
                return Err(definite(message, None));
            }
        }
    }

    /// Kafka's `ensureValidRecordSize`.
    fn check_size(&self, record_bytes: usize) -> Result<(), SendError> {
        let c = &self.inner.config;
        let bytes = HEADER_LEN + record_bytes;
        if bytes > c.max_request_size {
            let message = format!("record of {bytes} bytes exceeds max.request.size {}", c.max_request_size);
            return Err(definite(message, Some(MESSAGE_TOO_LARGE)));
        }
        if bytes > c.buffer_memory {
            let message = format!("record of {bytes} bytes exceeds buffer.memory {}", c.buffer_memory);
            return Err(definite(message, Some(MESSAGE_TOO_LARGE)));
        }
        Ok(())
    }

    /// The record's partition: its own, or the partitioner's choice.
    fn choose_partition(&self, record: &ProducerRecord, partitions: &[super::metadata::PartitionMeta], size: usize) -> Result<i32, SendError> {
        let topic = &record.topic;
        let count = partitions.len() as i32;
        let p = match (record.partition, &self.partitioner) {
            (Some(p), _) => p,
            (None, ActivePartitioner::BuiltIn(b)) => {
                let available: Vec<i32> = (0..count).filter(|i| partitions[*i as usize].leader >= 0).collect();
                b.partition(topic, record.key.as_deref(), size, &available, count)
            }
            (None, ActivePartitioner::Class(c)) => c.partition(topic, record.key.as_deref(), record.value.as_deref(), count),
        };
        if !(0..count).contains(&p) {
            return Err(definite(format!("partition {p} of {topic} does not exist ({count} partitions)"), None));
        }
        Ok(p)
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        {
            let mut acc = self.inner.acc.lock().unwrap();
            acc.close();
            acc.abort_queued("producer dropped");
        }
        self.inner.shutdown.store(true, Ordering::SeqCst);
        self.inner.wake.notify_one();
        self.inner.progress.notify_waiters();
    }
}

/// Ends a flush's "everything is sendable" even if the flush is cancelled.
struct FlushGuard<'a>(&'a Inner);

impl Drop for FlushGuard<'_> {
    fn drop(&mut self) {
        self.0.acc.lock().unwrap().flush_done();
    }
}

impl Inner {
    /// Appends and wakes the sender; starts it on the first append.
    fn append(self: &Arc<Self>, tp: Tp, record: PendingRecord) -> Result<(), (AppendRefused, PendingRecord)> {
        self.acc.lock().unwrap().append(tp, record, Instant::now())?;
        if !self.sender_started.swap(true, Ordering::SeqCst) {
            tokio::spawn(run_sender(Arc::downgrade(self), self.wake.clone()));
        }
        self.wake.notify_one();
        Ok(())
    }

    /// Waits until `done` holds for the accumulator, re-checking on progress.
    async fn wait_progress(&self, done: impl Fn(&Accumulator) -> bool) {
        loop {
            let notified = self.progress.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if done(&self.acc.lock().unwrap()) {
                return;
            }
            notified.await;
        }
    }

    /// The topic's partitions: cached ones at once, else refreshing until
    /// `deadline` (Kafka's waitOnMetadata, bounded by max.block.ms).
    async fn wait_for_metadata(&self, topic: &str, deadline: Instant) -> Result<Vec<super::metadata::PartitionMeta>, SendError> {
        let backoff = Duration::from_millis(self.config.network.retry_backoff_ms.max(1));
        loop {
            if let Some(p) = self.cluster.cached_partitions(topic).filter(|p| !p.is_empty()) {
                return Ok(p);
            }
            let attempt = tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), self.cluster.partitions(topic)).await;
            if let Ok(Ok(p)) = &attempt {
                if !p.is_empty() {
                    return Ok(p.clone());
                }
            }
            if Instant::now() + backoff >= deadline {
                let why = match attempt {
                    Ok(Err(e)) => format!(": {e}"),
                    _ => String::new(),
                };
                let message = format!("topic {topic} not present in metadata after max.block.ms {}{why}", self.config.max_block_ms);
                return Err(definite(message, None));
            }
            tokio::time::sleep(backoff).await;
        }
    }

    /// Refreshes metadata in the background (one refresh at a time).
    fn spawn_refresh(self: &Arc<Self>, topics: BTreeSet<String>) {
        if topics.is_empty() || self.refreshing.swap(true, Ordering::SeqCst) {
            return;
        }
        let inner = self.clone();
        tokio::spawn(async move {
            for t in &topics {
                inner.cluster.invalidate();
                if let Err(e) = inner.cluster.refresh_if_needed(t).await {
                    tracing::debug!("producer metadata refresh for {t} failed: {e}");
                    let backoff = Duration::from_millis(inner.config.network.retry_backoff_ms);
                    tokio::time::sleep(backoff).await;
                }
            }
            inner.refreshing.store(false, Ordering::SeqCst);
            inner.wake.notify_one();
        });
    }

    /// Gets a producer id with InitProducerId from any broker, retrying
    /// with backoff until one answers (Kafka's idempotent TransactionManager).
    fn spawn_init_producer_id(self: &Arc<Self>) {
        if self.initialising.swap(true, Ordering::SeqCst) {
            return;
        }
        let inner = self.clone();
        tokio::spawn(async move {
            let backoff = Duration::from_millis(inner.config.network.retry_backoff_ms.max(1));
            while !inner.shutdown.load(Ordering::SeqCst) {
                let request = InitProducerIdRequest::default().with_transactional_id(None).with_transaction_timeout_ms(i32::MAX);
                let candidates = inner.cluster.any_brokers();
                let result = inner
                    .cluster
                    .call_any(ApiKey::InitProducerId, INIT_PRODUCER_ID_VERSION, RequestKind::InitProducerId(request), &candidates)
                    .await;
                match result {
                    Ok((_, ResponseKind::InitProducerId(r))) if r.error_code == 0 && r.producer_id.0 >= 0 => {
                        let producer = ProducerIdEpoch { producer_id: r.producer_id.0, epoch: r.producer_epoch };
                        tracing::debug!(?producer, "idempotent producer initialised");
                        inner.acc.lock().unwrap().set_producer_id(producer);
                        break;
                    }
                    Ok((_, ResponseKind::InitProducerId(r))) => tracing::debug!("InitProducerId error {}", r.error_code),
                    Ok(_) => tracing::debug!("InitProducerId: wrong response kind"),
                    Err(e) => tracing::debug!("InitProducerId failed: {e}"),
                }
                tokio::time::sleep(backoff).await;
            }
            inner.initialising.store(false, Ordering::SeqCst);
            inner.wake.notify_one();
        });
    }
}

/// The sender loop: runs while the producer exists (it holds only a weak
/// reference between rounds) and, after close, until nothing is left.
async fn run_sender(weak: Weak<Inner>, wake: Arc<Notify>) {
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let notified = wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let (next_wakeup, expired) = sender_round(&inner);
        let exit = inner.shutdown.load(Ordering::SeqCst) && inner.acc.lock().unwrap().is_empty();
        if expired > 0 {
            inner.progress.notify_waiters();
        }
        drop(inner);
        if exit {
            return;
        }
        let until = next_wakeup.unwrap_or_else(|| Instant::now() + SENDER_TICK).min(Instant::now() + SENDER_TICK);
        let _ = tokio::time::timeout(until.saturating_duration_since(Instant::now()), notified).await;
    }
}

/// One pass of the sender: expiry, producer id, metadata, drains and
/// requests. Returns when it next has something to do on its own, and how
/// many batches expired.
fn sender_round(inner: &Arc<Inner>) -> (Option<Instant>, usize) {
    let now = Instant::now();
    inner.cluster.pool.close_idle();
    let mut acc = inner.acc.lock().unwrap();
    let expired = acc.expire(now);
    if acc.needs_producer_id() && !acc.is_empty() {
        inner.spawn_init_producer_id();
    }
    let tps = acc.partitions_with_batches();
    let leaders: BTreeMap<Tp, Leader> =
        tps.iter().filter_map(|tp| inner.cluster.cached_leader(&tp.0, tp.1).map(|l| (tp.clone(), l))).collect();
    let ready = acc.ready(now, |tp| leaders.get(tp).map(|l| l.node_id));
    let mut refresh = ready.unknown_leader_topics.clone();
    refresh.extend(tps.iter().filter(|tp| inner.cluster.needs_refresh(&tp.0)).map(|tp| tp.0.clone()));
    let mut requests = Vec::new();
    for node in &ready.nodes {
        let led: Vec<Tp> = leaders.iter().filter(|(_, l)| l.node_id == *node).map(|(tp, _)| tp.clone()).collect();
        let Some(addr) = leaders.values().find(|l| l.node_id == *node).map(|l| l.addr) else { continue };
        let ids = acc.drain(now, *node, &led);
        if ids.is_empty() {
            continue;
        }
        let mut batches = Vec::with_capacity(ids.len());
        let mut failed = Vec::new();
        for id in ids {
            match acc.encode(id, inner.config.compression) {
                Ok(bytes) => batches.push((id, acc.in_flight_batch(id).expect("drained").tp.clone(), bytes)),
                Err(e) => failed.push((id, e)),
            }
        }
        for (id, e) in failed {
            // Never sent, and retrying cannot help: INVALID_RECORD.
            let outcome = BatchOutcome::Error { code: INVALID_RECORD, message: Some(format!("cannot encode record batch: {e}")), context: "encode".into() };
            acc.complete(id, outcome, now);
        }
        if batches.is_empty() {
            acc.request_done(*node);
            continue;
        }
        requests.push((*node, addr, batches));
    }
    let next = ready.next_wakeup;
    drop(acc);
    inner.spawn_refresh(refresh);
    for (node, addr, batches) in requests {
        tokio::spawn(send_produce(inner.clone(), node, addr, batches));
    }
    (next, expired)
}

/// One Produce request with one batch per partition; reports each batch's
/// outcome to the accumulator.
async fn send_produce(inner: Arc<Inner>, node: i32, addr: SocketAddr, batches: Vec<(u64, Tp, Bytes)>) {
    let config = &inner.config;
    let mut by_topic: BTreeMap<&str, Vec<PartitionProduceData>> = BTreeMap::new();
    for (_, (topic, partition), bytes) in &batches {
        let data = PartitionProduceData::default().with_index(*partition).with_records(Some(bytes.clone()));
        by_topic.entry(topic.as_str()).or_default().push(data);
    }
    let request_timeout = Duration::from_millis(config.network.request_timeout_ms);
    let request = ProduceRequest::default()
        .with_acks(config.acks)
        .with_timeout_ms(request_timeout.as_millis().min(i32::MAX as u128) as i32)
        .with_topic_data(
            by_topic
                .into_iter()
                .map(|(t, parts)| {
                    TopicProduceData::default().with_name(TopicName(StrBytes::from_string(t.to_string()))).with_partition_data(parts)
                })
                .collect(),
        );
    let expect_response = config.acks != 0;
    let result = inner
        .cluster
        .pool
        .call(addr, Request { api_key: ApiKey::Produce, version: PRODUCE_VERSION, body: RequestKind::Produce(request), expect_response }, request_timeout)
        .await;
    let outcomes: Vec<(u64, BatchOutcome)> = match result {
        Ok(None) => batches.iter().map(|(id, _, _)| (*id, BatchOutcome::Appended { base_offset: -1, log_append_time_ms: -1 })).collect(),
        Ok(Some(ResponseKind::Produce(resp))) => batches.iter().map(|(id, tp, _)| (*id, partition_outcome(&inner, &resp, tp))).collect(),
        Ok(Some(_)) => {
            let e = ClientError::Malformed("Produce: wrong response kind".into());
            batches.iter().map(|(id, _, _)| (*id, BatchOutcome::RequestFailed(e.clone()))).collect()
        }
        Err(e) => {
            inner.cluster.invalidate();
            batches.iter().map(|(id, _, _)| (*id, BatchOutcome::RequestFailed(e.clone()))).collect()
        }
    };
    {
        let now = Instant::now();
        let mut acc = inner.acc.lock().unwrap();
        for (id, outcome) in outcomes {
            acc.complete(id, outcome, now);
        }
        acc.request_done(node);
    }
    inner.wake.notify_one();
    inner.progress.notify_waiters();
}

/// One partition's answer inside a Produce response.
fn partition_outcome(inner: &Inner, resp: &ProduceResponse, (topic, partition): &Tp) -> BatchOutcome {
    let found = resp
        .responses
        .iter()
        .filter(|t| t.name.0.as_str() == topic)
        .flat_map(|t| t.partition_responses.iter())
        .find(|p| p.index == *partition);
    let Some(p) = found else {
        return BatchOutcome::RequestFailed(ClientError::Malformed(format!("Produce response lacks {topic}-{partition}")));
    };
    if p.error_code == 0 {
        if p.base_offset < 0 {
            return BatchOutcome::RequestFailed(ClientError::Malformed(format!("Produce: no offset for {topic}-{partition}")));
        }
        return BatchOutcome::Appended { base_offset: p.base_offset, log_append_time_ms: p.log_append_time_ms };
    }
    if is_stale_metadata_code(p.error_code) {
        inner.cluster.invalidate();
    }
    BatchOutcome::Error {
        code: p.error_code,
        message: p.error_message.as_ref().map(|m| m.to_string()),
        context: format!("produce to {topic}-{partition}"),
    }
}
