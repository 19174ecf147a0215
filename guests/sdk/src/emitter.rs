//! The listener list behind every event the SDK emits: one [`Listeners`]
//! per event name, as Node's `EventEmitter` keeps one array per name.
//!
//! Children, the process and any later source (a worker, a socket) hold
//! one of these for each of their events, so "call the listeners" has one
//! implementation with one set of rules.

use std::cell::RefCell;

/// The listeners of one event, called in registration order.
///
/// Node's rules, as `EventEmitter.emit` follows them:
/// - listeners run in the order they were added;
/// - a listener added while the event is being emitted is not called for
///   that emit, but is kept for the next one.
///
/// # Re-entrancy
///
/// [`emit`](Listeners::emit) takes the list out, calls it with no borrow
/// held, then puts it back in front of any listener added meanwhile. A
/// listener may therefore add listeners, or run code that emits this very
/// event again, without a `RefCell` panic. Such a nested emit sees only the
/// listeners added since the outer emit began (Node would call the whole
/// list again), and [`is_empty`](Listeners::is_empty) is true inside it
/// unless some were added: callers that queue events when nobody listens
/// (early messages) therefore queue a nested one instead of losing it.
pub(crate) struct Listeners<A: ?Sized> {
    list: RefCell<Vec<Listener<A>>>,
}

type Listener<A> = Box<dyn FnMut(&A)>;

impl<A: ?Sized> Default for Listeners<A> {
    fn default() -> Self {
        Listeners {
            list: RefCell::new(Vec::new()),
        }
    }
}

impl<A: ?Sized> Listeners<A> {
    /// Adds `f` after the listeners already there (Node's `on`).
    pub(crate) fn add(&self, f: impl FnMut(&A) + 'static) {
        self.list.borrow_mut().push(Box::new(f));
    }

    /// Whether no listener is registered (outside an emit in progress).
    pub(crate) fn is_empty(&self) -> bool {
        self.list.borrow().is_empty()
    }

    /// Calls every listener with `args`, in registration order.
    pub(crate) fn emit(&self, args: &A) {
        let mut taken = std::mem::take(&mut *self.list.borrow_mut());
        for f in &mut taken {
            f(args);
        }
        let mut list = self.list.borrow_mut();
        taken.append(&mut list);
        *list = taken;
    }
}

// Pure logic, so these run on the build machine: `cargo test -p hive --lib`.
#[cfg(test)]
mod tests {
    use super::Listeners;
    use std::cell::RefCell;
    use std::rc::Rc;

    #[test]
    fn registration_order_and_added_during_emit() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let events: Rc<Listeners<u32>> = Rc::default();
        let (l, e) = (log.clone(), events.clone());
        events.add(move |n| {
            l.borrow_mut().push(format!("a{n}"));
            let l = l.clone();
            // Added during the emit: not called now, kept for the next.
            e.add(move |n| l.borrow_mut().push(format!("late{n}")));
        });
        let l = log.clone();
        events.add(move |n| l.borrow_mut().push(format!("b{n}")));
        events.emit(&1);
        assert_eq!(*log.borrow(), ["a1", "b1"]);
        events.emit(&2);
        assert_eq!(*log.borrow(), ["a1", "b1", "a2", "b2", "late2"]);
    }

    #[test]
    fn nested_emit_sees_only_new_listeners() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let events: Rc<Listeners<u32>> = Rc::default();
        let (l, e) = (log.clone(), events.clone());
        events.add(move |n| {
            l.borrow_mut().push(format!("outer{n}"));
            if *n == 1 {
                assert!(e.is_empty());
                e.emit(&2);
            }
        });
        events.emit(&1);
        assert_eq!(*log.borrow(), ["outer1"]);
        assert!(!events.is_empty());
    }
}
