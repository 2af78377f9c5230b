//! The C ABI of syncmq's durable queue.
