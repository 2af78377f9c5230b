//! A topic as the engine keeps it: its stored record, its subscribers' ids
//! and its sequence counter, which hands out message sequences and queue
//! positions, reserved in blocks so that a restart never reuses one.

use serde::{Deserialize, Serialize};

use super::config::TopicConfig;
use super::keys;
use super::store::{Batch, Space};
use crate::error::Result;

/// Sequence numbers are reserved in blocks of this size, with one meta
/// write per block, so a restart resumes after the block without scanning.
const SEQ_BLOCK: u64 = 1 << 16;

/// A topic as stored under `meta/topic/<name>`, in `MessagePack` with field
/// names, so fields added later (with defaults) still read old records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TopicRecord {
    pub(crate) id: u32,
    pub(crate) config: TopicConfig,
    pub(crate) subscribers: Vec<(String, u32)>,
}

impl TopicRecord {
    /// The record stored under `key`.
    pub(crate) fn decode(key: &[u8], bytes: &[u8]) -> Result<Self> {
        rmp_serde::from_slice(bytes).map_err(|e| keys::corrupt(Space::Meta, key, e.to_string()))
    }
}

pub(crate) struct Topic {
    pub(crate) id: u32,
    pub(crate) config: TopicConfig,
    /// Subscriber names and ids, in declaration order.
    pub(crate) subs: Vec<(String, u32)>,
    next_seq: u64,
    /// The stored reservation: every sequence below it may be in use.
    reserved: u64,
}

impl Topic {
    /// A topic whose sequences resume at the stored reservation `reserved`
    /// (0 for a new topic).
    pub(crate) fn new(record: TopicRecord, reserved: u64) -> Self {
        Topic {
            id: record.id,
            config: record.config,
            subs: record.subscribers,
            next_seq: reserved,
            reserved,
        }
    }

    /// The next sequence number, reserving a new block in `batch` when the
    /// current one is used up.
    pub(crate) fn alloc_seq(&mut self, batch: &mut Batch) -> u64 {
        if self.next_seq >= self.reserved {
            self.reserved = self.next_seq + SEQ_BLOCK;
            batch.put(
                Space::Meta,
                keys::meta_seq(self.id),
                self.reserved.to_be_bytes().to_vec(),
            );
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// Called when a batch that may hold a new reservation was not written
    /// (an error, or a panic that may have struck before or after the
    /// write): the next allocation writes a fresh reservation, so the one
    /// in memory never runs ahead of the stored one. Numbers are skipped,
    /// never reused; a reuse after reopen would overwrite stored messages.
    pub(crate) fn unconfirm_reservation(&mut self) {
        self.reserved = self.reserved.min(self.next_seq);
    }

    /// The sequence the next allocation hands out: every message and
    /// queue entry of the topic is below it.
    pub(crate) fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// What the delivery code needs of the topic, copied out.
    pub(crate) fn info(&self) -> TopicInfo {
        TopicInfo {
            id: self.id,
            next_seq: self.next_seq,
            fanout: self.subs.len() > 1,
            dedupe: self.config.dedupe(),
            ack_timeout: self.config.ack_timeout(),
            max_deliveries: self.config.max_deliveries(),
        }
    }
}

/// The settings of a topic the delivery code needs, copied out so that the
/// topic and a subscriber can be borrowed at once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TopicInfo {
    pub(crate) id: u32,
    /// [`Topic::next_seq`] when it was copied out.
    pub(crate) next_seq: u64,
    pub(crate) fanout: bool,
    pub(crate) dedupe: bool,
    pub(crate) ack_timeout: Option<std::time::Duration>,
    pub(crate) max_deliveries: u32,
}
