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

#[cfg(test)]
mod tests {
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Wake, Waker};

    use super::{batched, wake};

    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counter() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count::default());
        (count.clone(), Waker::from(count))
    }

    #[test]
    fn outside_a_hook_a_wake_is_immediate() {
        let (count, waker) = counter();
        wake(waker);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn inside_a_hook_wakes_wait_for_its_end_and_each_waker_wakes_once() {
        let (a, wa) = counter();
        let (b, wb) = counter();
        batched(|| {
            for _ in 0..1000 {
                wake(wa.clone());
            }
            wake(wb.clone());
            // Nested hooks flush with the outermost one.
            batched(|| wake(wb.clone()));
            assert_eq!(a.0.load(Ordering::SeqCst), 0);
            assert_eq!(b.0.load(Ordering::SeqCst), 0);
        });
        assert_eq!(a.0.load(Ordering::SeqCst), 1);
        assert_eq!(b.0.load(Ordering::SeqCst), 1);
        // The batch is over: the next wake is immediate again.
        wake(wa);
        assert_eq!(a.0.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_panicking_hook_still_issues_its_wakes() {
        let (count, waker) = counter();
        let result = catch_unwind(AssertUnwindSafe(|| {
            batched(|| {
                wake(waker.clone());
                panic!("hook failed");
            })
        }));
        assert!(result.is_err());
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        wake(waker);
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
    }
}
