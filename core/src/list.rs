//! Intrusive doubly linked lists of slot indices, threaded through the slots themselves.
//!
//! Every slot is on exactly one list at a time (free, live or pending), so one `prev`/`next`
//! pair per slot serves all three. This gives O(1) accept, O(1) "move to most recently
//! active" and O(1) "earliest idle deadline" (the live list is ordered by last activity,
//! and every connection has the same idle timeout), so no per-event work grows with the
//! table's capacity. Indices are `u16`; `NIL` marks an end.
//!
//! Out-of-range indices cannot occur (the server only hands in its own indices): a debug
//! build asserts it, a release build ignores them, so no path can panic.

/// The end-of-list marker.
pub(crate) const NIL: u16 = u16::MAX;

/// One slot's neighbours on whatever list it is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub(crate) struct Links {
    prev: u16,
    next: u16,
}

impl Links {
    pub(crate) const UNLINKED: Links = Links {
        prev: NIL,
        next: NIL,
    };
}

/// A node that carries its own links.
pub(crate) trait Linked {
    fn links(&self) -> Links;
    fn set_links(&mut self, links: Links);
}

impl Linked for Links {
    fn links(&self) -> Links {
        *self
    }
    fn set_links(&mut self, links: Links) {
        *self = links;
    }
}

/// The two ends of one list and its length.
#[derive(Clone, Copy, Debug)]
pub(crate) struct List {
    head: u16,
    tail: u16,
    len: u16,
}

impl List {
    pub(crate) const EMPTY: List = List {
        head: NIL,
        tail: NIL,
        len: 0,
    };

    pub(crate) const fn front(&self) -> Option<u16> {
        if self.head == NIL {
            None
        } else {
            Some(self.head)
        }
    }

    pub(crate) const fn back(&self) -> Option<u16> {
        if self.tail == NIL {
            None
        } else {
            Some(self.tail)
        }
    }

    pub(crate) const fn len(&self) -> usize {
        self.len as usize
    }

    /// Appends `i`, which must be on no list.
    pub(crate) fn push_back<T: Linked>(&mut self, links: &mut [T], i: u16) {
        let Some(node) = links.get_mut(usize::from(i)) else {
            debug_assert!(false, "slot {i} out of range");
            return;
        };
        node.set_links(Links {
            prev: self.tail,
            next: NIL,
        });
        match links.get_mut(usize::from(self.tail)) {
            Some(old_tail) => {
                let l = old_tail.links();
                old_tail.set_links(Links { next: i, ..l });
            }
            None => self.head = i,
        }
        self.tail = i;
        self.len = self.len.saturating_add(1);
    }

    /// Takes `i`, which must be on this list, off it.
    pub(crate) fn remove<T: Linked>(&mut self, links: &mut [T], i: u16) {
        let Some(node) = links.get_mut(usize::from(i)) else {
            debug_assert!(false, "slot {i} out of range");
            return;
        };
        let Links { prev, next } = node.links();
        node.set_links(Links::UNLINKED);
        match links.get_mut(usize::from(prev)) {
            Some(p) => {
                let l = p.links();
                p.set_links(Links { next, ..l });
            }
            None => self.head = next,
        }
        match links.get_mut(usize::from(next)) {
            Some(n) => {
                let l = n.links();
                n.set_links(Links { prev, ..l });
            }
            None => self.tail = prev,
        }
        self.len = self.len.saturating_sub(1);
    }

    /// Takes the first index off the list.
    pub(crate) fn pop_front<T: Linked>(&mut self, links: &mut [T]) -> Option<u16> {
        let i = self.front()?;
        self.remove(links, i);
        Some(i)
    }

    /// Walks the list from front to back.
    pub(crate) fn iter<'a, T: Linked>(&self, links: &'a [T]) -> Iter<'a, T> {
        Iter {
            links,
            next: self.head,
        }
    }

    /// Walks the list from back to front.
    pub(crate) fn iter_rev<'a, T: Linked>(&self, links: &'a [T]) -> RevIter<'a, T> {
        RevIter {
            links,
            next: self.tail,
        }
    }
}

/// Indices of one list, front to back (or back to front: [`RevIter`]).
pub(crate) struct Iter<'a, T, const BACK: bool = false> {
    links: &'a [T],
    next: u16,
}

/// Indices of one list, back to front.
pub(crate) type RevIter<'a, T> = Iter<'a, T, true>;

impl<T: Linked, const BACK: bool> Iterator for Iter<'_, T, BACK> {
    type Item = u16;

    fn next(&mut self) -> Option<u16> {
        let i = self.next;
        let links = self.links.get(usize::from(i))?.links();
        self.next = if BACK { links.prev } else { links.next };
        Some(i)
    }
}

/// The index after `i` on its list.
pub(crate) fn next<T: Linked>(links: &[T], i: u16) -> Option<u16> {
    links
        .get(usize::from(i))
        .map(|l| l.links().next)
        .filter(|&n| n != NIL)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(list: &List, links: &[Links]) -> Vec<u16> {
        let links: &[Links] = links;
        let fwd: Vec<u16> = list.iter(links).collect();
        assert_eq!(fwd.len(), list.len());
        let mut back: Vec<u16> = list.iter_rev(links).collect();
        back.reverse();
        assert_eq!(back, fwd, "both ways list the same indices");
        fwd
    }

    #[test]
    fn push_remove_pop_keep_order() {
        let mut links = [Links::UNLINKED; 5];
        let mut l = List::EMPTY;
        for i in [3, 0, 4, 1] {
            l.push_back(&mut links, i);
        }
        assert_eq!(items(&l, &links), [3, 0, 4, 1]);
        l.remove(&mut links, 4);
        assert_eq!(items(&l, &links), [3, 0, 1]);
        l.remove(&mut links, 3);
        assert_eq!((l.front(), l.back()), (Some(0), Some(1)));
        l.remove(&mut links, 1);
        assert_eq!(items(&l, &links), [0]);
        assert_eq!(next(&links, 0), None);
        assert_eq!(l.pop_front(&mut links), Some(0));
        assert_eq!((l.front(), l.back(), l.len()), (None, None, 0));
        assert_eq!(l.pop_front(&mut links), None);
    }

    #[test]
    fn two_lists_share_one_links_array() {
        let mut links = [Links::UNLINKED; 4];
        let (mut a, mut b) = (List::EMPTY, List::EMPTY);
        a.push_back(&mut links, 0);
        b.push_back(&mut links, 1);
        a.push_back(&mut links, 2);
        b.push_back(&mut links, 3);
        a.remove(&mut links, 0);
        b.push_back(&mut links, 0);
        assert_eq!(items(&a, &links), [2]);
        assert_eq!(items(&b, &links), [1, 3, 0]);
        assert_eq!(next(&links, 1), Some(3));
    }

    #[test]
    #[cfg(not(debug_assertions))]
    fn out_of_range_indices_are_ignored() {
        let mut links = [Links::UNLINKED; 2];
        let mut l = List::EMPTY;
        l.push_back(&mut links, 9);
        l.remove(&mut links, NIL);
        assert_eq!(l.len(), 0);
        assert_eq!(l.front(), None);
    }
}
