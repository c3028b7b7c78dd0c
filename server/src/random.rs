//! The server's randomness (session ids, the state's login id), injectable per thread.
//!
//! Production never seeds: [`fill`] draws from `rand`'s thread RNG (a CSPRNG seeded by the
//! OS). `harness sim` runs the whole flow on one thread and seeds it with
//! [`seed_this_thread`], so that one number reproduces every id the server makes.

use std::cell::RefCell;

use rand::{RngCore as _, SeedableRng as _};

thread_local! {
    static SEEDED: RefCell<Option<rand::rngs::StdRng>> = const { RefCell::new(None) };
}

/// Fills `bytes` with random bytes: from this thread's seeded RNG when one is set, else
/// from the thread RNG.
pub fn fill(bytes: &mut [u8]) {
    let seeded = SEEDED.with(|cell| {
        cell.borrow_mut().as_mut().map(|rng| {
            rng.fill_bytes(bytes);
        })
    });
    if seeded.is_none() {
        rand::rng().fill_bytes(bytes);
    }
}

/// Makes [`fill`] on this thread deterministic (from `seed`) until the guard is dropped.
/// Only for simulations and tests: ids from a known seed are guessable.
#[must_use = "the seeding ends when the guard is dropped"]
pub fn seed_this_thread(seed: u64) -> SeededGuard {
    SEEDED.with(|cell| *cell.borrow_mut() = Some(rand::rngs::StdRng::seed_from_u64(seed)));
    SeededGuard(std::marker::PhantomData)
}

/// Ends [`seed_this_thread`]'s seeding when dropped (on the thread that seeded).
#[derive(Debug)]
pub struct SeededGuard(std::marker::PhantomData<*const ()>);

impl Drop for SeededGuard {
    fn drop(&mut self) {
        SEEDED.with(|cell| *cell.borrow_mut() = None);
    }
}
