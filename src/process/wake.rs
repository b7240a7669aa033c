//! Wake-ups a process causes are issued when its hook returns.
//!
//! A broadcast from one process to thousands of mailboxes served by a few
//! threads (the ticker to every WebSocket) would otherwise wake a serving
//! thread for the first message, let it take a handful, and wake it again
//! for the next: a cross-thread wake-up (a system call) per few messages.
//! Deferred to the end of the hook, each serving thread is woken once and
//! finds the whole burst waiting.

use std::cell::RefCell;
use std::task::Waker;

thread_local! {
    /// `Some` while a hook runs on this thread: the wakers it caused.
    static DEFERRED: RefCell<Option<Vec<Waker>>> = const { RefCell::new(None) };
}

/// Runs `hook`, then issues the wake-ups it deferred.
pub(crate) fn batched<R>(hook: impl FnOnce() -> R) -> R {
    let outer = DEFERRED.with(|d| {
        let mut d = d.borrow_mut();
        let outer = d.is_some();
        if !outer {
            *d = Some(Vec::new());
        }
        outer
    });
    if outer {
        return hook();
    }
    // Taken back even if the hook unwinds (the caller catches panics).
    struct Flush;
    impl Drop for Flush {
        fn drop(&mut self) {
            let wakers = DEFERRED.with(|d| d.borrow_mut().take()).unwrap_or_default();
            for waker in wakers {
                waker.wake();
            }
        }
    }
    let _flush = Flush;
    hook()
}

/// Wakes `waker` now, or when the running hook returns if there is one.
pub(crate) fn wake(waker: Waker) {
    let now = DEFERRED.with(|d| match d.borrow_mut().as_mut() {
        Some(list) => {
            if !list.iter().any(|w| w.will_wake(&waker)) {
                list.push(waker);
            }
            None
        }
        None => Some(waker),
    });
    if let Some(waker) = now {
        waker.wake();
    }
}
