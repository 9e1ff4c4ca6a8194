//! Handle tables: a C handle is an id (never reused, never 0) that a table maps to an `Arc` of the
//! object. C only passes ids around, so a freed handle, a handle of another kind, or a made-up
//! value is found missing and refused, never dereferenced. A call clones the `Arc` out of the table,
//! so freeing a handle while another thread is inside a call on it is safe: the object lives until
//! that call returns.
use super::{CResult, Failure, GraftStatus};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, TryLockError};

/// Ids of every kind come from one counter, so that no two live handles share an id.
static NEXT_ID: AtomicUsize = AtomicUsize::new(HANDLE_STEP);

/// Ids advance by 16 so that they look like aligned pointers to debuggers and bindings that check.
const HANDLE_STEP: usize = 16;

/// The live handles of one kind.
pub(crate) struct Table<T> {
    kind: &'static str,
    map: Mutex<BTreeMap<usize, Arc<T>>>,
}

impl<T> Table<T> {
    /// An empty table of handles named `kind` in messages (`graft_model`).
    pub(crate) const fn new(kind: &'static str) -> Table<T> {
        Table { kind, map: Mutex::new(BTreeMap::new()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<usize, Arc<T>>> {
        // The map is consistent at every unlock (single inserts and removes), so a poisoned lock is
        // still usable.
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers `v` and returns its handle, as the opaque pointer type `H` of the C API.
    pub(crate) fn insert<H>(&self, v: T) -> *mut H {
        let id = NEXT_ID.fetch_add(HANDLE_STEP, Ordering::Relaxed);
        self.lock().insert(id, Arc::new(v));
        std::ptr::without_provenance_mut(id)
    }

    /// The object behind handle `h` (NULL, freed or foreign handles are errors).
    pub(crate) fn get<H>(&self, h: *const H) -> CResult<Arc<T>> {
        let id = h.addr();
        if id == 0 {
            return Err(Failure::null(self.kind));
        }
        self.lock().get(&id).cloned().ok_or_else(|| self.stale(id))
    }

    /// Removes handle `h` and returns its object (dropped by the caller, outside the table's lock).
    pub(crate) fn remove<H>(&self, h: *const H) -> CResult<Arc<T>> {
        let id = h.addr();
        self.lock().remove(&id).ok_or_else(|| self.stale(id))
    }

    /// Releases handle `h` (what a `graft_*_free` function does): NULL does nothing, a handle that
    /// is not live is an error. The object goes when its last user lets go.
    pub(crate) fn free<H>(&self, h: *const H) -> CResult<()> {
        if h.is_null() {
            return Ok(());
        }
        drop(self.remove(h)?);
        Ok(())
    }

    fn stale(&self, id: usize) -> Failure {
        Failure::new(GraftStatus::ErrInvalidHandle, format!("{:#x} is not a live {} handle (already freed, or a handle of another kind)", id, self.kind))
    }
}

impl<T> Table<Mutex<T>> {
    /// Runs `f` on the object behind `h`, one call at a time: a concurrent or re-entrant call is
    /// `GRAFT_STATUS_ERR_BUSY`, and an object poisoned by an internal error is refused (`noun`
    /// names it in the messages: "session", "trainer").
    pub(crate) fn with_locked<H, R>(&self, h: *const H, noun: &str, f: impl FnOnce(&mut T) -> CResult<R>) -> CResult<R> {
        let obj = self.get(h)?;
        let mut guard = match obj.try_lock() {
            Ok(g) => g,
            Err(TryLockError::WouldBlock) => {
                return Err(Failure::new(GraftStatus::ErrBusy, format!("the {noun} is in use by another call (another thread, or a callback of its own)")))
            }
            Err(TryLockError::Poisoned(_)) => {
                return Err(Failure::new(GraftStatus::ErrInternal, format!("the {noun} was left inconsistent by an earlier internal error; free it")))
            }
        };
        f(&mut guard)
    }
}
