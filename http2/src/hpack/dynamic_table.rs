//! The dynamic table (RFC 7541 sections 2.3.2 and 4): the fields a block added, newest first,
//! within a size the encoder chose. Both sides keep one and change it the same way.
//!
//! An entry's size is its name's and value's lengths plus 32. Adding an entry evicts the oldest
//! until it fits; an entry larger than the whole table empties it and is not added (section 4.4).
//! Lowering the size evicts the oldest until the table fits (section 4.3).
//!
//! Each entry also has an absolute number: the count of entries inserted before it. An index
//! (1 = newest) changes with every insertion, the absolute number never does, so the encoder's
//! hash index ([`super::encoder`]) holds absolute numbers and an eviction renumbers nothing.

use std::collections::VecDeque;

use bytes::Bytes;

/// What RFC 7541 section 4.1 adds to an entry's name and value lengths.
pub(super) const ENTRY_OVERHEAD: usize = 32;

/// One field in the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    pub name: Bytes,
    pub value: Bytes,
}

impl Entry {
    /// Its size as the table counts it (section 4.1).
    pub fn size(&self) -> usize {
        entry_size(&self.name, &self.value)
    }
}

/// The size an entry for `name` and `value` would have.
pub(super) fn entry_size(name: &[u8], value: &[u8]) -> usize {
    name.len() + value.len() + ENTRY_OVERHEAD
}

#[derive(Debug)]
pub(super) struct DynamicTable {
    /// Newest first: index 1 is `entries[0]`.
    entries: VecDeque<Entry>,
    /// The sum of the entries' sizes.
    size: usize,
    max_size: usize,
    /// How many entries were ever inserted: the newest entry's absolute number plus one.
    inserted: u64,
}

impl DynamicTable {
    pub fn new(max_size: usize) -> DynamicTable {
        DynamicTable {
            entries: VecDeque::new(),
            size: 0,
            max_size,
            inserted: 0,
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    pub fn size(&self) -> usize {
        self.size
    }

    pub fn max_size(&self) -> usize {
        self.max_size
    }

    /// The entry at `index`, 1 being the newest.
    pub fn get(&self, index: usize) -> Option<&Entry> {
        self.entries.get(index.checked_sub(1)?)
    }

    /// The entry with absolute number `number`, if it is still in the table.
    pub fn by_number(&self, number: u64) -> Option<&Entry> {
        let age = self.inserted.checked_sub(number)?.checked_sub(1)?;
        self.entries.get(usize::try_from(age).ok()?)
    }

    /// The index (1 = newest) of the entry with absolute number `number`, which is in the table.
    pub fn index_of(&self, number: u64) -> usize {
        usize::try_from(self.inserted - number).expect("an entry in the table is recent")
    }

    /// The absolute number the next inserted entry gets.
    pub fn next_number(&self) -> u64 {
        self.inserted
    }

    /// Adds an entry, evicting the oldest as needed; `evicted` hears of each entry evicted with
    /// its absolute number.
    pub fn insert(&mut self, entry: Entry, mut evicted: impl FnMut(u64, &Entry)) {
        let size = entry.size();
        if size > self.max_size {
            self.evict_to(0, &mut evicted);
            // The entry counts as inserted: the numbering stays the same on both sides.
            self.inserted += 1;
            return;
        }
        self.evict_to(self.max_size - size, &mut evicted);
        self.entries.push_front(entry);
        self.size += size;
        self.inserted += 1;
    }

    /// Changes the largest size (a dynamic table size update), evicting the oldest entries
    /// that no longer fit.
    pub fn set_max_size(&mut self, max_size: usize, mut evicted: impl FnMut(u64, &Entry)) {
        self.max_size = max_size;
        self.evict_to(max_size, &mut evicted);
    }

    fn evict_to(&mut self, target: usize, evicted: &mut impl FnMut(u64, &Entry)) {
        while self.size > target {
            let number = self.inserted - self.entries.len() as u64;
            let entry = self
                .entries
                .pop_back()
                .expect("a table with a size has entries");
            self.size -= entry.size();
            evicted(number, &entry);
        }
    }

    /// The entries, newest first (for tests).
    #[cfg(test)]
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }

    /// The entries, newest first, and the table's size (for tests).
    #[cfg(test)]
    pub fn snapshot(&self) -> (Vec<(Bytes, Bytes)>, usize) {
        let entries = self
            .entries()
            .map(|e| (e.name.clone(), e.value.clone()))
            .collect();
        (entries, self.size())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &'static str, value: &'static str) -> Entry {
        Entry {
            name: Bytes::from_static(name.as_bytes()),
            value: Bytes::from_static(value.as_bytes()),
        }
    }

    #[test]
    fn insert_evict_and_number() {
        let mut table = DynamicTable::new(100);
        let mut gone = Vec::new();
        table.insert(entry("a", "1"), |n, e| gone.push((n, e.clone())));
        table.insert(entry("b", "22"), |n, e| gone.push((n, e.clone())));
        assert_eq!((table.len(), table.size()), (2, 34 + 35));
        assert_eq!(table.get(1), Some(&entry("b", "22")));
        assert_eq!(table.by_number(0), Some(&entry("a", "1")));
        assert_eq!(table.index_of(0), 2);
        // 35 + 34 + 36 > 100: "a" (number 0) goes.
        table.insert(entry("c", "333"), |n, e| gone.push((n, e.clone())));
        assert_eq!(gone, [(0, entry("a", "1"))]);
        assert_eq!(table.by_number(0), None);
        assert_eq!(table.by_number(2), Some(&entry("c", "333")));
        assert_eq!(table.by_number(3), None);
        assert_eq!(table.index_of(1), 2);
        // Too large for the table: empties it, numbered all the same.
        table.insert(entry("big", "x"), |_, _| {});
        table.set_max_size(30, |_, _| {});
        assert_eq!((table.len(), table.size()), (0, 0));
        table.set_max_size(100, |_, _| {});
        table.insert(entry("d", "y"), |_, _| {});
        assert_eq!(table.next_number(), 5);
    }
}
