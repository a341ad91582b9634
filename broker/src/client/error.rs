//! Client errors: bad settings (`ConfigError`), failed requests
//! (`ClientError`) and failed sends with their Kafka outcome class
//! (`SendError`: definite failure vs unknown outcome).

/// A client setting that cannot be used. Always names the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid value {value:?} for {key}: {reason}")]
    Invalid { key: String, value: String, reason: String },
    #[error("{key}={value} is not implemented yet")]
    NotImplemented { key: String, value: String },
}

/// Why a consumer or admin request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The connection failed or closed; `sent` says whether the request may
    /// have reached the broker.
    #[error("network error talking to {addr}: {message}")]
    Network { addr: String, message: String, sent: bool },
    /// No answer within request.timeout.ms (or the caller's deadline).
    #[error("timed out: {0}")]
    Timeout(String),
    /// The broker answered with a Kafka error code.
    #[error("broker error {code} ({name}) for {context}: {message}")]
    Broker { code: i16, name: String, context: String, message: String },
    /// The broker's answer could not be decoded or does not fit the request.
    #[error("malformed response: {0}")]
    Malformed(String),
    /// Fetched record data failed to decode (Kafka's CorruptRecordException).
    #[error("corrupt records in {topic}-{partition}: {message}")]
    CorruptRecords { topic: String, partition: i32, message: String },
    /// auto.offset.reset=none and a partition has no valid position.
    #[error("no valid offset for {topic}-{partition} and auto.offset.reset=none")]
    NoOffsetForPartition { topic: String, partition: i32 },
    /// Metadata does not (yet) know the topic or its partition.
    #[error("unknown topic or partition {topic}-{partition}")]
    UnknownTopicOrPartition { topic: String, partition: i32 },
    /// Kafka's CommitFailedException: the commit cannot succeed because
    /// the member is no longer in the generation it committed for
    /// (ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID, or it
    /// was kicked out after max.poll.interval.ms).
    #[error("commit failed: {0}")]
    CommitFailed(String),
    /// Kafka's RebalanceInProgressException: a commit during a rebalance;
    /// poll again (completing the rebalance) and commit what is then owned.
    #[error("commit failed: the group is rebalancing")]
    RebalanceInProgress,
    /// The client cannot do what was asked (no group.id for a group
    /// operation, an assignor it does not have).
    #[error("unsupported: {0}")]
    Unsupported(String),
}

impl ClientError {
    /// A broker error from a response error code.
    pub fn broker(code: i16, context: impl Into<String>, message: Option<&str>) -> ClientError {
        ClientError::Broker {
            code,
            name: error_name(code),
            context: context.into(),
            message: message.unwrap_or("").to_string(),
        }
    }

    /// Whether trying again (after a metadata refresh) may succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            ClientError::Network { .. } | ClientError::Timeout(_) => true,
            ClientError::UnknownTopicOrPartition { .. } => true,
            ClientError::Broker { code, .. } => is_retriable_code(*code),
            ClientError::Malformed(_) => true,
            ClientError::CorruptRecords { .. } | ClientError::NoOffsetForPartition { .. } => false,
            ClientError::CommitFailed(_) | ClientError::RebalanceInProgress | ClientError::Unsupported(_) => false,
        }
    }

    /// Whether the request may have been received by a broker.
    pub fn maybe_sent(&self) -> bool {
        match self {
            ClientError::Network { sent, .. } => *sent,
            ClientError::UnknownTopicOrPartition { .. } => false,
            _ => true,
        }
    }
}

/// A failed `Producer::send`.
///
/// `indefinite` is Kafka's outcome class (Jepsen's `info`): true when the
/// record may have been appended (timeouts, network errors after the request
/// may have been written, NOT_LEADER_OR_FOLLOWER, unknown server errors,
/// NOT_ENOUGH_REPLICAS_AFTER_APPEND), false only when it certainly was not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    pub indefinite: bool,
    pub message: String,
    /// The Kafka error code of the last attempt, if a broker answered.
    pub error_code: Option<i16>,
    /// How many produce requests were attempted.
    pub attempts: u32,
    /// Why the send failed, when the cause is the client's own.
    pub kind: SendErrorKind,
}

/// The client-side cause of a failed send.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SendErrorKind {
    /// A broker error, a network failure, a timeout or a refused record
    /// (`error_code` and `message` say which).
    #[default]
    Failed,
    /// The producer was closed before the record completed: `close` with a
    /// timeout that ran out (or zero), a send after close, or a dropped
    /// producer (Kafka: "Producer is closed forcefully").
    ProducerClosed,
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let class = if self.indefinite { "outcome unknown" } else { "not written" };
        write!(f, "send failed ({class}) after {} attempt(s): {}", self.attempts, self.message)
    }
}

impl std::error::Error for SendError {}

/// The Kafka name of an error code ("NotLeaderOrFollower"), or "Unknown(n)".
pub fn error_name(code: i16) -> String {
    match kafka_protocol::error::ResponseError::try_from_code(code) {
        None => "None".to_string(),
        Some(e) => format!("{e:?}"),
    }
}

/// Kafka's retriable classification of an error code.
pub fn is_retriable_code(code: i16) -> bool {
    kafka_protocol::error::ResponseError::try_from_code(code).is_some_and(|e| e.is_retriable())
}

/// Produce error codes the broker returns before appending anything: a send
/// failing with one of these certainly did not write. Every other code is
/// treated as "may have been written" (KAFKA-13574, Jepsen's classification).
pub const PRODUCE_DEFINITE_CODES: &[i16] = &[
    2,  // CORRUPT_MESSAGE: rejected on validation
    3,  // UNKNOWN_TOPIC_OR_PARTITION
    5,  // LEADER_NOT_AVAILABLE
    10, // MESSAGE_TOO_LARGE
    17, // INVALID_TOPIC_EXCEPTION
    18, // RECORD_LIST_TOO_LARGE
    19, // NOT_ENOUGH_REPLICAS: checked before the append
    21, // INVALID_REQUIRED_ACKS
    29, // TOPIC_AUTHORIZATION_FAILED
    32, // INVALID_TIMESTAMP
    35, // UNSUPPORTED_VERSION
    43, // UNSUPPORTED_FOR_MESSAGE_FORMAT
    45, // OUT_OF_ORDER_SEQUENCE_NUMBER
    47, // INVALID_PRODUCER_EPOCH
    87, // INVALID_RECORD
    90, // PRODUCER_FENCED
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_enough_replicas_is_definite_but_after_append_is_not() {
        assert!(PRODUCE_DEFINITE_CODES.contains(&19));
        assert!(!PRODUCE_DEFINITE_CODES.contains(&20));
        assert!(!PRODUCE_DEFINITE_CODES.contains(&6)); // NOT_LEADER_OR_FOLLOWER
        assert!(!PRODUCE_DEFINITE_CODES.contains(&-1)); // UNKNOWN_SERVER_ERROR
        assert!(!PRODUCE_DEFINITE_CODES.contains(&7)); // REQUEST_TIMED_OUT
    }

    #[test]
    fn error_names_come_from_kafka_protocol() {
        assert_eq!(error_name(6), "NotLeaderOrFollower");
        assert!(is_retriable_code(6));
        assert!(!is_retriable_code(10));
    }
}
