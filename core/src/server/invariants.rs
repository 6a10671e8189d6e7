//! The server's invariants, checked on demand: see [`Server::check_invariants`].

use super::Server;
use crate::list::List;
use crate::slot::{ConnSlot, State};
use crate::storage::Storage;

impl<S: Storage> Server<S> {
    /// Checks the invariants of the [type's documentation](Server#invariants) and names the
    /// first one broken. It visits every slot and buffer, so it is for tests and fuzzers,
    /// which call it after every event; a server driven only through its public API always
    /// passes, whatever the order of the calls.
    pub fn check_invariants(&self) -> Result<(), &'static str> {
        let parts = self.storage.parts_ref();
        let slots = parts
            .slots
            .get(..usize::from(self.opened))
            .unwrap_or_default();
        if slots.len() != usize::from(self.opened) {
            return Err("the table is shorter than the slots opened");
        }
        let listed = self.free.len() + self.live.len() + self.draining.len() + self.pending.len();
        if listed != slots.len() {
            return Err("a slot is on no list, or on two");
        }
        self.check_list(slots, self.free, |s| s == State::Free, "free list")?;
        self.check_list(slots, self.live, |s| s == State::Open, "live list")?;
        self.check_list(
            slots,
            self.draining,
            |s| s == State::Draining,
            "draining list",
        )?;
        let owed = |s| matches!(s, State::Announcing | State::Closing(_));
        self.check_list(slots, self.pending, owed, "pending list")?;
        let ordered = self
            .live
            .iter(slots)
            .take(slots.len())
            .filter_map(|i| slots.get(usize::from(i)))
            .try_fold(None, |last, s| match last {
                Some(t) if s.last_active < t => Err(()),
                _ => Ok(Some(s.last_active)),
            });
        if ordered.is_err() {
            return Err("the live list is not ordered by last activity");
        }
        for slot in slots {
            self.check_slot(slot)?;
        }
        self.check_buffers(slots, parts.free)
    }

    /// `list` holds exactly the slots whose state `belongs`, walked without looping.
    fn check_list(
        &self,
        slots: &[ConnSlot],
        list: List,
        belongs: impl Fn(State) -> bool,
        name: &'static str,
    ) -> Result<(), &'static str> {
        let mut walked = 0;
        for i in list.iter(slots).take(slots.len() + 1) {
            walked += 1;
            match slots.get(usize::from(i)) {
                Some(slot) if belongs(slot.state) => {}
                _ => return Err(name),
            }
        }
        let members = slots.iter().filter(|s| belongs(s.state)).count();
        if walked != list.len() || members != list.len() {
            return Err(name);
        }
        Ok(())
    }

    /// A slot holds a buffer exactly while bytes are queued in it, never more than a
    /// buffer's worth.
    fn check_slot(&self, slot: &ConnSlot) -> Result<(), &'static str> {
        if slot.has_buffer() != (slot.len > 0) {
            return Err("a slot holds a buffer without bytes queued, or bytes without one");
        }
        if slot.len > self.queue_size || (slot.has_buffer() && slot.head >= self.queue_size) {
            return Err("a queue holds more than its buffer");
        }
        if slot.has_buffer() && slot.buffer >= self.pool.buffers {
            return Err("a slot holds a buffer outside the pool");
        }
        Ok(())
    }

    /// Every buffer is either held by one slot or free, once.
    fn check_buffers(&self, slots: &[ConnSlot], free: &[u16]) -> Result<(), &'static str> {
        let held = slots.iter().filter(|s| s.has_buffer());
        if held.clone().count() + self.pool.available() != usize::from(self.pool.buffers) {
            return Err("buffers held and free do not add up to the pool");
        }
        // Each buffer once: the indices held and free sum to those of the whole pool.
        let (stack, fresh) = self.pool.free_entries(free);
        let sum: u64 = held.map(|s| u64::from(s.buffer)).sum::<u64>()
            + stack.iter().map(|&k| u64::from(k)).sum::<u64>()
            + fresh.map(u64::from).sum::<u64>();
        let n = u64::from(self.pool.buffers);
        if sum != n * n.saturating_sub(1) / 2 {
            return Err("a buffer is held twice, or held and free at once");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::storage::Storage;
    use crate::{Action, Config, Instant, Server, StaticStorage};

    type S = Server<StaticStorage<4, 2, 16>>;

    fn busy() -> (S, crate::ConnId) {
        let mut s = S::new_static(Config::new());
        let id = s.on_accepted(Instant::ZERO).unwrap();
        s.recv_with(Instant::ZERO, id, |buf| {
            buf[..3].copy_from_slice(b"abc");
            (3, ())
        })
        .unwrap();
        s.check_invariants().unwrap();
        (s, id)
    }

    #[test]
    fn a_buffer_without_bytes_is_caught() {
        let (mut s, id) = busy();
        s.storage.parts().slots[id.index()].len = 0;
        assert!(s.check_invariants().unwrap_err().contains("buffer"));
    }

    #[test]
    fn a_buffer_held_twice_is_caught() {
        let (mut s, _) = busy();
        let b = s.on_accepted(Instant::ZERO).unwrap();
        let slots = s.storage.parts().slots;
        slots[b.index()].len = 1;
        slots[b.index()].buffer = slots[0].buffer;
        s.pool.take(s.storage.parts().free);
        assert!(s.check_invariants().unwrap_err().contains("twice"));
    }

    #[test]
    fn a_state_off_its_list_is_caught() {
        let (mut s, id) = busy();
        s.storage.parts().slots[id.index()].state = crate::slot::State::Draining;
        assert!(s.check_invariants().unwrap_err().contains("list"));
    }

    #[test]
    fn undrained_actions_are_counted_until_polled() {
        let (mut s, id) = busy();
        s.on_error(id, crate::ErrorKind::Reset).unwrap();
        assert_eq!((s.pending_actions(), s.conns().count()), (1, 0));
        s.check_invariants().unwrap();
        assert!(matches!(s.poll_action(), Some(Action::Close(..))));
        assert_eq!(s.pending_actions(), 0);
        s.check_invariants().unwrap();
    }
}
