//! TODO(owner): see lib.rs layout.
