//! Wire types of /v1 and the agent protocol.
