//! Broker, topic and client settings.
