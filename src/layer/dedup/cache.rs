//! The bounded memory of seen ids.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::slot::Slot;

type Cell = Arc<Slot>;

#[derive(Debug)]
pub(crate) struct Cache {
    capacity: usize,
    ttl: Duration,
    entries: Mutex<Entries>,
}

/// Ids are held once, shared by the map and the eviction order; the map
/// hashes with foldhash (ids are hashed on every delivery).
#[derive(Debug)]
struct Entries {
    cells: HashMap<Arc<str>, Cell, foldhash::fast::RandomState>,
    order: VecDeque<(Arc<str>, Instant)>,
}

/// Room made up front, so a busy receiver does not rehash under the lock
/// while its memory fills.
const INITIAL_ROOM: usize = 4096;

impl Cache {
    pub(crate) fn new(capacity: usize, ttl: Duration) -> Self {
        let room = capacity.min(INITIAL_ROOM);
        Self {
            capacity,
            ttl,
            entries: Mutex::new(Entries {
                cells: HashMap::with_capacity_and_hasher(room, Default::default()),
                order: VecDeque::with_capacity(room),
            }),
        }
    }

    /// The cell of `id`, created if it is new. Expired and surplus ids are
    /// forgotten, oldest first.
    pub(crate) fn cell(&self, id: &str) -> Cell {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(cell) = entries.cells.get(id) {
            return cell.clone();
        }
        let now = Instant::now();
        while let Some((_, at)) = entries.order.front() {
            if entries.order.len() < self.capacity && now.saturating_duration_since(*at) < self.ttl
            {
                break;
            }
            if let Some((oldest, _)) = entries.order.pop_front() {
                entries.cells.remove(&oldest);
            }
        }
        let cell = Arc::new(Slot::new());
        let id: Arc<str> = id.into();
        entries.cells.insert(id.clone(), cell.clone());
        entries.order.push_back((id, now));
        cell
    }

    pub(crate) fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .cells
            .len()
    }
}
