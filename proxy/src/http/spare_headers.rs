//! Header maps and field lists kept for the next request once one is done with, so the common
//! request allocates neither on the app side.
//!
//! Each message crosses a sidecar in two maps: the one its head arrives in from one side (weft's
//! HTTP/1.1 codec, or h2) and the one it leaves in. The `http` crate's `HeaderMap` costs two
//! allocations (its index and its entries) and their frees; h2 builds its maps itself, so only the
//! codec's side can reuse one. The maps that h2 decoded for the codec to write out (the request on
//! the server sidecar, the response on the client sidecar) are kept once written, and the codec
//! parses the next head into one: a sidecar takes in as many as it hands out.
//!
//! The client half's attempts keep a request's fields for a retry ([`crate::outbound`]): that
//! list is kept too once the request is done.
//!
//! A pool per thread, like the codec's [`super::h1::buffers`]: no lock, and the sidecar's runtime
//! is one thread by default, so what is kept is what is taken next.

use std::cell::RefCell;

use http::{HeaderMap, HeaderName, HeaderValue};

/// A request's fields, outside a map.
pub type FieldList = Vec<(HeaderName, HeaderValue)>;

/// Maps or lists kept per thread; the rest are freed.
const KEPT_PER_THREAD: usize = 16;
/// Larger ones (from a head with many fields) are freed rather than kept.
const KEPT_CAPACITY: usize = 64;

thread_local! {
    static MAPS: RefCell<Vec<HeaderMap>> = const { RefCell::new(Vec::new()) };
    static LISTS: RefCell<Vec<FieldList>> = const { RefCell::new(Vec::new()) };
}

/// An empty map with room for `fields` fields: a kept one, or a new one.
pub fn map(fields: usize) -> HeaderMap {
    match MAPS.with(|maps| maps.borrow_mut().pop()) {
        Some(mut map) => {
            map.reserve(fields);
            map
        }
        None => HeaderMap::with_capacity(fields),
    }
}

/// Keeps `map`, emptied, for the next head.
pub fn give_back_map(mut map: HeaderMap) {
    if map.capacity() == 0 || map.capacity() > KEPT_CAPACITY {
        return;
    }
    map.clear();
    keep(&MAPS, map);
}

/// An empty list with room for `fields` fields: a kept one, or a new one.
pub fn list(fields: usize) -> FieldList {
    match LISTS.with(|lists| lists.borrow_mut().pop()) {
        Some(mut list) => {
            list.reserve(fields);
            list
        }
        None => Vec::with_capacity(fields),
    }
}

/// Keeps `list`, emptied, for the next request.
pub fn give_back_list(mut list: FieldList) {
    if list.capacity() == 0 || list.capacity() > KEPT_CAPACITY {
        return;
    }
    list.clear();
    keep(&LISTS, list);
}

fn keep<T>(pool: &'static std::thread::LocalKey<RefCell<Vec<T>>>, spare: T) {
    pool.with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.len() < KEPT_PER_THREAD {
            pool.push(spare);
        }
    });
}

#[cfg(test)]
mod tests {
    use http::header::HOST;

    use super::*;

    #[test]
    fn a_map_given_back_is_taken_again_empty() {
        MAPS.with(|maps| maps.borrow_mut().clear());
        let mut first = map(4);
        first.insert(HOST, HeaderValue::from_static("hello"));
        let capacity = first.capacity();
        give_back_map(first);
        let again = map(2);
        assert!(again.is_empty(), "nothing of the last head is left");
        assert_eq!(again.capacity(), capacity, "the same map, not a new one");
        assert!(MAPS.with(|maps| maps.borrow().is_empty()));
    }

    #[test]
    fn a_list_given_back_is_taken_again_empty() {
        LISTS.with(|lists| lists.borrow_mut().clear());
        let mut first = list(4);
        first.push((HOST, HeaderValue::from_static("hello")));
        let address = first.as_ptr();
        give_back_list(first);
        let again = list(2);
        assert!(again.is_empty());
        assert_eq!(again.as_ptr(), address, "the same list, not a new one");
    }

    #[test]
    fn large_and_empty_ones_are_not_kept() {
        MAPS.with(|maps| maps.borrow_mut().clear());
        LISTS.with(|lists| lists.borrow_mut().clear());
        give_back_map(HeaderMap::with_capacity(4 * KEPT_CAPACITY));
        give_back_map(HeaderMap::new());
        give_back_list(Vec::with_capacity(4 * KEPT_CAPACITY));
        give_back_list(Vec::new());
        assert!(MAPS.with(|maps| maps.borrow().is_empty()));
        assert!(LISTS.with(|lists| lists.borrow().is_empty()));
    }
}
