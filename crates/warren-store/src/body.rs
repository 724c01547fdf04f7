//! A message body as the buffers it arrived in.
//!
//! A body larger than one frame arrives as several frames. Joining them into one buffer
//! was the largest user-space cost of 1 MiB messages (a fifth of the broker's CPU,
//! docs/benchmarks.md), so a body keeps its parts, and whoever writes it out (a
//! vectored socket write, a segment record) walks them in order.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};

/// The octets of a body: one buffer, or several in order.
#[derive(Clone)]
pub struct Body(Repr);

#[derive(Clone)]
enum Repr {
    One(Bytes),
    /// Two or more parts and their total length.
    Parts(Arc<[Bytes]>, usize),
}

impl Body {
    /// An empty body.
    #[must_use]
    pub const fn new() -> Self {
        Body(Repr::One(Bytes::new()))
    }

    /// A body made of `parts`, in order; empty parts are left out.
    #[must_use]
    pub fn from_parts(parts: impl IntoIterator<Item = Bytes>) -> Self {
        let mut parts = parts.into_iter().filter(|p| !p.is_empty());
        let Some(first) = parts.next() else {
            return Self::new();
        };
        let Some(second) = parts.next() else {
            return Body(Repr::One(first));
        };
        let mut all = vec![first, second];
        all.extend(parts);
        let len = all.iter().map(Bytes::len).sum();
        Body(Repr::Parts(all.into(), len))
    }

    /// Length in octets.
    #[must_use]
    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::One(b) => b.len(),
            Repr::Parts(_, len) => *len,
        }
    }

    /// No octets.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The parts, in order. A non-empty body has no empty parts.
    #[must_use]
    pub fn parts(&self) -> &[Bytes] {
        match &self.0 {
            Repr::One(b) => std::slice::from_ref(b),
            Repr::Parts(parts, _) => parts,
        }
    }

    /// The body as one buffer: shared when it is one part, copied when it is several.
    #[must_use]
    pub fn to_bytes(&self) -> Bytes {
        match &self.0 {
            Repr::One(b) => b.clone(),
            Repr::Parts(parts, len) => {
                let mut joined = BytesMut::with_capacity(*len);
                for part in parts.iter() {
                    joined.extend_from_slice(part);
                }
                joined.freeze()
            }
        }
    }

    /// The octets from `range.start` to `range.end`, as slices of the parts (no copy).
    /// Out-of-range bounds are clamped.
    pub fn slices(&self, range: std::ops::Range<usize>) -> impl Iterator<Item = Bytes> + '_ {
        let mut offset = 0;
        self.parts().iter().filter_map(move |part| {
            let (start, end) = (offset, offset + part.len());
            offset = end;
            let from = range.start.max(start);
            let to = range.end.min(end);
            (from < to).then(|| part.slice(from - start..to - start))
        })
    }
}

impl Default for Body {
    fn default() -> Self {
        Self::new()
    }
}

impl From<Bytes> for Body {
    fn from(bytes: Bytes) -> Self {
        Body(Repr::One(bytes))
    }
}

impl From<&'static [u8]> for Body {
    fn from(bytes: &'static [u8]) -> Self {
        Body(Repr::One(Bytes::from_static(bytes)))
    }
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Self {
        Body(Repr::One(Bytes::from(bytes)))
    }
}

/// Bodies are equal when their octets are, however they are split.
impl PartialEq for Body {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && {
            let mut ours = self.parts().iter().flat_map(|p| p.iter());
            let theirs = other.parts().iter().flat_map(|p| p.iter());
            theirs.into_iter().all(|b| ours.next() == Some(b))
        }
    }
}

impl Eq for Body {}

impl PartialEq<[u8]> for Body {
    fn eq(&self, other: &[u8]) -> bool {
        *self == Body::from(Bytes::copy_from_slice(other))
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Repr::One(b) => b.fmt(f),
            Repr::Parts(parts, len) => f
                .debug_struct("Body")
                .field("len", len)
                .field("parts", &parts.len())
                .finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn split(data: &[u8], cuts: &[usize]) -> Body {
        let mut parts = Vec::new();
        let mut at = 0;
        for &cut in cuts {
            let cut = cut.min(data.len()).max(at);
            parts.push(Bytes::copy_from_slice(&data[at..cut]));
            at = cut;
        }
        parts.push(Bytes::copy_from_slice(&data[at..]));
        Body::from_parts(parts)
    }

    #[test]
    fn one_part_is_shared_not_copied() {
        let bytes = Bytes::from_static(b"hello");
        let body = Body::from_parts([Bytes::new(), bytes.clone()]);
        assert_eq!(body.parts().len(), 1);
        assert_eq!(body.to_bytes().as_ptr(), bytes.as_ptr());
    }

    #[test]
    fn empty_parts_make_an_empty_body() {
        let body = Body::from_parts([Bytes::new(), Bytes::new()]);
        assert!(body.is_empty());
        assert_eq!(body, Body::new());
    }

    #[test]
    fn a_body_stays_the_size_of_one_buffer() {
        assert_eq!(size_of::<Body>(), size_of::<Bytes>());
    }

    proptest! {
        #[test]
        fn parts_read_as_the_whole(
            data in proptest::collection::vec(any::<u8>(), 0..300),
            mut cuts in proptest::collection::vec(0usize..300, 0..6),
            start in 0usize..320,
            width in 0usize..320,
        ) {
            cuts.sort_unstable();
            let body = split(&data, &cuts);
            prop_assert_eq!(body.len(), data.len());
            prop_assert_eq!(&body.to_bytes()[..], &data[..]);
            prop_assert!(body == *data.as_slice());
            prop_assert_eq!(&body, &Body::from(data.clone()));
            let end = start.saturating_add(width);
            let sliced: Vec<u8> = body.slices(start..end).flat_map(|b| b.to_vec()).collect();
            let want = &data[start.min(data.len())..end.min(data.len()).max(start.min(data.len()))];
            prop_assert_eq!(&sliced[..], want);
        }
    }
}
