//! Up to `poolSize` multiplexed connections to one server, opened on demand: a command takes
//! an idle one; a new one opens only while every open one is busy and fewer than `poolSize`
//! are open; past that the least busy carries it (so the pool grows with concurrency, as
//! go-redis's does).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::OnceCell;

/// The pool; `C` is a cheap-to-clone multiplexed connection handle.
pub(super) struct Pool<C> {
    slots: Vec<Slot<C>>,
    /// How many slots are in use (a prefix of `slots`).
    opened: AtomicUsize,
}

struct Slot<C> {
    conn: OnceCell<C>,
    busy: AtomicUsize,
}

/// A connection taken from the pool; its slot counts as busy until this is dropped.
pub(super) struct Lease<'a, C> {
    pub(super) conn: C,
    busy: &'a AtomicUsize,
}

impl<C> Drop for Lease<'_, C> {
    fn drop(&mut self) {
        self.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Counts a slot busy for as long as it lives (also while its connection opens).
struct Busy<'a>(&'a AtomicUsize);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<C: Clone> Pool<C> {
    /// An empty pool of `size` slots (at least one).
    pub(super) fn new(size: usize) -> Self {
        Self {
            slots: (0..size.max(1))
                .map(|_| Slot {
                    conn: OnceCell::new(),
                    busy: AtomicUsize::new(0),
                })
                .collect(),
            opened: AtomicUsize::new(0),
        }
    }

    /// A pool whose first slot already holds `conn`.
    pub(super) fn with_first(size: usize, conn: C) -> Self {
        let pool = Self::new(size);
        let _ = pool.slots[0].conn.set(conn);
        pool.opened.store(1, Ordering::Release);
        pool
    }

    fn pick(&self) -> &Slot<C> {
        // `opened` only grows, and never past `slots.len()` (the `fetch_update` below).
        let opened = &self.slots[..self.opened.load(Ordering::Acquire)];
        let busy = |slot: &&Slot<C>| slot.busy.load(Ordering::Acquire);
        match opened.iter().find(|slot| busy(slot) == 0) {
            Some(idle) => idle,
            None => match self
                .opened
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (n < self.slots.len()).then_some(n + 1)
                }) {
                Ok(n) => &self.slots[n],
                // Full: the least busy connection carries it (`slots` is never empty).
                Err(_) => self.slots.iter().min_by_key(busy).unwrap_or(&self.slots[0]),
            },
        }
    }

    /// A connection, opening the chosen slot's with `connect` when it has none yet (a
    /// failed open leaves the slot empty for the next caller).
    pub(super) async fn take<E, F, Fut>(&self, connect: F) -> Result<Lease<'_, C>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<C, E>>,
    {
        let slot = self.pick();
        slot.busy.fetch_add(1, Ordering::AcqRel);
        let busy = Busy(&slot.busy);
        let conn = slot.conn.get_or_try_init(connect).await?.clone();
        std::mem::forget(busy);
        Ok(Lease {
            conn,
            busy: &slot.busy,
        })
    }
}
