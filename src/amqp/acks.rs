//! Acknowledging a consume channel's deliveries, coalesced.
//!
//! Acknowledging each delivery on its own costs a frame for the broker and
//! for lapin, and lapin's per-delivery `Acker` adds a hop through its
//! internal task. Here a handler that finishes while another is sending
//! leaves its settlement to that sender, which sends what gathered as one
//! batch: a `basic.ack` with `multiple` at the highest gathered ack below
//! which every delivery is settled, and single acks above it, so a slow
//! handler holds back no other delivery's prefetch slot. Rejections go one
//! by one, before any ack that could cover them.

use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard, PoisonError};

use lapin::Channel;
use lapin::options::{BasicAckOptions, BasicNackOptions};
use lapin::types::DeliveryTag;

/// How a delivery ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Settlement {
    /// Handled: the broker forgets it.
    Ack,
    /// Rejected without requeue: the queue's dead-letter exchange takes it.
    Reject,
}

/// The acknowledgements of one consume channel.
pub(crate) struct Acks {
    channel: Channel,
    state: Mutex<State>,
}

impl Acks {
    pub(crate) fn new(channel: Channel) -> Self {
        Self {
            channel,
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Settles delivery `tag`: sends it, with whatever else gathered
    /// meanwhile, unless another caller is sending, which then sends it.
    pub(crate) async fn settle(&self, tag: DeliveryTag, settlement: Settlement) {
        {
            let mut state = self.lock();
            if state.dead {
                return;
            }
            state.settle(tag, settlement);
            if state.sending {
                return;
            }
            state.sending = true;
        }
        let mut sending = Sending(Some(self));
        loop {
            let batch = {
                let mut state = self.lock();
                let batch = state.batch();
                if batch.is_empty() {
                    state.sending = false;
                    sending.0 = None;
                    return;
                }
                batch
            };
            if let Err(error) = self.send(batch).await {
                tracing::debug!(%error, "could not settle deliveries; the broker will redeliver them");
                self.lock().dead = true;
                sending.0 = None;
                return;
            }
        }
    }

    async fn send(&self, batch: Batch) -> lapin::Result<()> {
        let reject = BasicNackOptions {
            multiple: false,
            requeue: false,
        };
        for tag in batch.rejects {
            self.channel.basic_nack(tag, reject).await?;
        }
        if let Some(tag) = batch.up_to {
            let multiple = BasicAckOptions { multiple: true };
            self.channel.basic_ack(tag, multiple).await?;
        }
        for tag in batch.singles {
            self.channel
                .basic_ack(tag, BasicAckOptions::default())
                .await?;
        }
        Ok(())
    }
}

/// Ends the channel's acknowledgements when a sender's future is dropped
/// mid-batch (handlers aborted at shutdown, just before the channel
/// closes). What that batch held is lost, and a later `multiple` ack could
/// cover a rejection in it; sending nothing more leaves every unsettled
/// delivery to the broker, which requeues them when the channel closes. A
/// sender that finds nothing left, or that fails, disarms it.
struct Sending<'a>(Option<&'a Acks>);

impl Drop for Sending<'_> {
    fn drop(&mut self) {
        if let Some(acks) = self.0 {
            acks.lock().dead = true;
        }
    }
}

#[derive(Default)]
struct State {
    /// The highest settled tag (tags start at 1).
    highest: DeliveryTag,
    /// Unsettled deliveries between the floor and the highest settled tag:
    /// the broker holds each unacknowledged, so there are never more than
    /// the prefetch allows.
    gaps: BTreeSet<DeliveryTag>,
    /// Settled, not sent yet.
    queued: Vec<(DeliveryTag, Settlement)>,
    /// A caller is sending; others leave their settlements to it.
    sending: bool,
    /// A batch failed or was abandoned: the channel is going away and
    /// nothing more is sent on it.
    dead: bool,
}

impl State {
    fn settle(&mut self, tag: DeliveryTag, settlement: Settlement) {
        if tag > self.highest {
            self.gaps.extend(self.highest + 1..tag);
            self.highest = tag;
        } else {
            self.gaps.remove(&tag);
        }
        self.queued.push((tag, settlement));
    }

    /// Every delivery up to this tag is settled.
    fn floor(&self) -> DeliveryTag {
        self.gaps.first().map_or(self.highest, |gap| gap - 1)
    }

    /// What is queued, as the frames to send in order.
    fn batch(&mut self) -> Batch {
        let floor = self.floor();
        let mut batch = Batch::default();
        for (tag, settlement) in self.queued.drain(..) {
            match settlement {
                Settlement::Reject => batch.rejects.push(tag),
                Settlement::Ack if tag <= floor => batch.up_to = batch.up_to.max(Some(tag)),
                Settlement::Ack => batch.singles.push(tag),
            }
        }
        batch
    }
}

/// Frames for one batch: the rejections, one `multiple` ack covering every
/// queued ack at or below the floor (its tag is one of them, so the broker
/// still holds it), then single acks above the floor.
#[derive(Debug, Default, PartialEq, Eq)]
struct Batch {
    rejects: Vec<DeliveryTag>,
    up_to: Option<DeliveryTag>,
    singles: Vec<DeliveryTag>,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.rejects.is_empty() && self.up_to.is_none() && self.singles.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::Settlement::{Ack, Reject};
    use super::*;

    fn batch(state: &mut State, settled: &[(DeliveryTag, Settlement)]) -> Batch {
        for &(tag, settlement) in settled {
            state.settle(tag, settlement);
        }
        state.batch()
    }

    #[test]
    fn contiguous_acks_become_one_multiple_ack() {
        let mut state = State::default();
        let sent = batch(&mut state, &[(2, Ack), (1, Ack), (3, Ack)]);
        assert_eq!(
            sent,
            Batch {
                up_to: Some(3),
                ..Batch::default()
            }
        );
        assert_eq!(state.floor(), 3);
        assert!(state.gaps.is_empty());
    }

    #[test]
    fn a_gap_leaves_later_acks_single_until_it_closes() {
        let mut state = State::default();
        let sent = batch(&mut state, &[(1, Ack), (3, Ack), (4, Ack)]);
        assert_eq!(
            sent,
            Batch {
                up_to: Some(1),
                singles: vec![3, 4],
                ..Batch::default()
            }
        );
        let sent = batch(&mut state, &[(5, Ack), (2, Ack)]);
        assert_eq!(
            sent,
            Batch {
                up_to: Some(5),
                ..Batch::default()
            },
            "the multiple ack's tag is one the broker still holds"
        );
        assert_eq!(state.floor(), 5);
        assert!(state.gaps.is_empty());
    }

    #[test]
    fn only_unsettled_deliveries_are_remembered() {
        let mut state = State::default();
        state.settle(2, Ack);
        for tag in 3..10_000 {
            state.settle(tag, Ack);
            state.batch();
        }
        assert_eq!(state.floor(), 0, "delivery 1 holds the floor");
        assert_eq!(state.gaps.len(), 1, "{:?}", state.gaps.first());
        state.settle(1, Ack);
        assert_eq!(state.floor(), 9_999);
    }

    #[test]
    fn rejections_go_first_and_singly() {
        let mut state = State::default();
        let sent = batch(&mut state, &[(1, Ack), (2, Reject), (3, Ack)]);
        assert_eq!(
            sent,
            Batch {
                rejects: vec![2],
                up_to: Some(3),
                singles: vec![],
            }
        );
    }

    #[test]
    fn a_rejection_at_the_floor_is_not_acked() {
        let mut state = State::default();
        let sent = batch(&mut state, &[(1, Ack)]);
        assert_eq!(sent.up_to, Some(1));
        let sent = batch(&mut state, &[(2, Reject)]);
        assert_eq!(
            sent,
            Batch {
                rejects: vec![2],
                ..Batch::default()
            }
        );
        assert_eq!(state.floor(), 2);
        assert!(state.batch().is_empty());
    }
}
