//! Operator state as bytes: what checkpoints store and restores read back.
//!
//! [`State`] is a small, explicit binary encoding (little-endian integers, length-prefixed
//! strings and collections) implemented here for the types operators keep — integers, floats,
//! strings, options, tuples, vectors, ordered and hashed maps and sets — and, through
//! [`state_struct!`](crate::state_struct), for the record and accumulator structs generated
//! code defines. No serde: generated crates stay quick to compile, and the format is ours to
//! keep stable.
//!
//! Bytes need not be deterministic (hash maps are written in their iteration order); a
//! decoder must only read back what an encoder of the same plan wrote. Restores check the plan
//! fingerprint first, so a layout mismatch is refused before any state is decoded; a damaged
//! file still gives an error, never a panic.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::{BuildHasher, Hash};

/// Why state could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("state ends early (truncated or written by another plan)")]
    Truncated,
    #[error("state holds an invalid value: {0}")]
    Invalid(&'static str),
    #[error("state has {0} unread bytes at its end (written by another plan?)")]
    Trailing(usize),
}

/// A value that can be saved into a checkpoint and loaded back.
///
/// `save` appends to `out` and must never look back at what is already there (an offset from
/// `out.len()`, `truncate`, a slice of earlier bytes): while a checkpoint is saved, `out` is
/// written out to the part's file between entries ([`crate::checkpoint::spill`]), so earlier
/// bytes may be gone from it. A count known only at the end goes through
/// [`spill::reserve`](crate::checkpoint::spill::reserve) and
/// [`spill::fill`](crate::checkpoint::spill::fill); a value built in a `Vec` of its own may
/// do as it likes there.
pub trait State: Sized {
    fn save(&self, out: &mut Vec<u8>);
    fn load(input: &mut &[u8]) -> Result<Self, StateError>;
}

/// Decodes a whole buffer as one `T`.
pub fn decode<T: State>(mut bytes: &[u8]) -> Result<T, StateError> {
    let value = T::load(&mut bytes)?;
    if !bytes.is_empty() {
        return Err(StateError::Trailing(bytes.len()));
    }
    Ok(value)
}

/// Encodes one value into a fresh buffer.
pub fn encode<T: State>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    value.save(&mut out);
    out
}

fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8], StateError> {
    if input.len() < n {
        return Err(StateError::Truncated);
    }
    let (head, rest) = input.split_at(n);
    *input = rest;
    Ok(head)
}

pub(crate) fn load_len(input: &mut &[u8]) -> Result<usize, StateError> {
    let n = u64::load(input)?;
    // A length can never exceed the bytes left (every element takes at least one byte,
    // except zero-sized ones, which state never holds in bulk): refuse absurd lengths
    // before allocating.
    if n > input.len() as u64 {
        return Err(StateError::Truncated);
    }
    Ok(n as usize)
}

macro_rules! int_state {
    ($($t:ty),*) => {$(
        impl State for $t {
            #[inline]
            fn save(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            #[inline]
            fn load(input: &mut &[u8]) -> Result<Self, StateError> {
                let bytes = take(input, std::mem::size_of::<$t>())?;
                Ok(<$t>::from_le_bytes(bytes.try_into().expect("sized above")))
            }
        }
    )*};
}
int_state!(i8, i16, i32, i64, i128, u8, u16, u32, u64, u128, f32, f64);

impl State for usize {
    fn save(&self, out: &mut Vec<u8>) {
        (*self as u64).save(out)
    }
    fn load(input: &mut &[u8]) -> Result<Self, StateError> {
        usize::try_from(u64::load(input)?).map_err(|_| StateError::Invalid("usize"))
    }
}

impl State for bool {
    fn save(&self, out: &mut Vec<u8>) {
        out.push(*self as u8)
    }
    fn load(input: &mut &[u8]) -> Result<Self, StateError> {
        match take(input, 1)?[0] {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(StateError::Invalid("bool")),
        }
    }
}

impl State for () {
    fn save(&self, _out: &mut Vec<u8>) {}
    fn load(_input: &mut &[u8]) -> Result<Self, StateError> {
        Ok(())
    }
}

impl State for String {
    fn save(&self, out: &mut Vec<u8>) {
        (self.len() as u64).save(out);
        out.extend_from_slice(self.as_bytes());
    }
    fn load(input: &mut &[u8]) -> Result<Self, StateError> {
        let n = load_len(input)?;
        let bytes = take(input, n)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| StateError::Invalid("string"))
    }
}

/// Test records use string literals; loading one leaks it (tests only).
#[cfg(test)]
impl State for &'static str {
    fn save(&self, out: &mut Vec<u8>) {
        self.to_string().save(out)
    }
    fn load(input: &mut &[u8]) -> Result<Self, StateError> {
        Ok(Box::leak(String::load(input)?.into_boxed_str()))
    }
}

impl<T: State> State for Option<T> {
    fn save(&self, out: &mut Vec<u8>) {
        match self {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                v.save(out);
            }
        }
    }
    fn load(input: &mut &[u8]) -> Result<Self, StateError> {
        match take(input, 1)?[0] {
            0 => Ok(None),
            1 => Ok(Some(T::load(input)?)),
            _ => Err(StateError::Invalid("option")),
        }
    }
}

impl<T: State> State for Box<T> {
    fn save(&self, out: &mut Vec<u8>) {
        (**self).save(out)
    }
    fn load(input: &mut &[u8]) -> Result<Self, StateError> {
        Ok(Box::new(T::load(input)?))
    }
}

impl<T: State> State for Vec<T> {
    fn save(&self, out: &mut Vec<u8>) {
        (self.len() as u64).save(out);
        for v in self {
            v.save(out);
            crate::checkpoint::spill::between(out);
        }
    }
    fn load(input: &mut &[u8]) -> Result<Self, StateError> {
        let n = load_len(input)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(T::load(input)?);
            crate::checkpoint::mapped::release(input);
        }
        Ok(v)
    }
}

impl<T: State> State for std::collections::VecDeque<T> {
    fn save(&self, out: &mut Vec<u8>) {
        (self.len() as u64).save(out);
        for v in self {
            v.save(out);
            crate::checkpoint::spill::between(out);
        }
    }
    fn load(input: &mut &[u8]) -> Result<Self, StateError> {
        Ok(Vec::<T>::load(input)?.into())
    }
}

impl<K: State + Ord, V: State> State for BTreeMap<K, V> {
    fn save(&self, out: &mut Vec<u8>) {
        (self.len() as u64).save(out);
        for (k, v) in self {
            k.save(out);
            v.save(out);
            crate::checkpoint::spill::between(out);
        }
    }
    fn load(input: &mut &[u8]) -> Result<Self, StateError> {
        let n = load_len(input)?;
        let mut map = BTreeMap::new();
        for _ in 0..n {
            let k = K::load(input)?;
            map.insert(k, V::load(input)?);
            crate::checkpoint::mapped::release(input);
        }
        Ok(map)
    }
}

impl<T: State + Ord> State for BTreeSet<T> {
    fn save(&self, out: &mut Vec<u8>) {
        (self.len() as u64).save(out);
        for v in self {
            v.save(out);
            crate::checkpoint::spill::between(out);
        }
    }
    fn load(input: &mut &[u8]) -> Result<Self, StateError> {
        let n = load_len(input)?;
        let mut set = BTreeSet::new();
        for _ in 0..n {
            set.insert(T::load(input)?);
            crate::checkpoint::mapped::release(input);
        }
        Ok(set)
    }
}

impl<K: State + Eq + Hash, V: State, S: BuildHasher + Default> State for HashMap<K, V, S> {
    fn save(&self, out: &mut Vec<u8>) {
        (self.len() as u64).save(out);
        for (k, v) in self {
            k.save(out);
            v.save(out);
            crate::checkpoint::spill::between(out);
        }
    }
    fn load(input: &mut &[u8]) -> Result<Self, StateError> {
        let n = load_len(input)?;
        let mut map = HashMap::with_capacity_and_hasher(n, S::default());
        for _ in 0..n {
            let k = K::load(input)?;
            map.insert(k, V::load(input)?);
            crate::checkpoint::mapped::release(input);
        }
        Ok(map)
    }
}

impl<T: State + Eq + Hash, S: BuildHasher + Default> State for HashSet<T, S> {
    fn save(&self, out: &mut Vec<u8>) {
        (self.len() as u64).save(out);
        for v in self {
            v.save(out);
            crate::checkpoint::spill::between(out);
        }
    }
    fn load(input: &mut &[u8]) -> Result<Self, StateError> {
        let n = load_len(input)?;
        let mut set = HashSet::with_capacity_and_hasher(n, S::default());
        for _ in 0..n {
            set.insert(T::load(input)?);
            crate::checkpoint::mapped::release(input);
        }
        Ok(set)
    }
}

macro_rules! tuple_state {
    ($(($($name:ident),+)),*) => {$(
        #[allow(non_snake_case)]
        impl<$($name: State),+> State for ($($name,)+) {
            fn save(&self, out: &mut Vec<u8>) {
                let ($($name,)+) = self;
                $($name.save(out);)+
            }
            fn load(input: &mut &[u8]) -> Result<Self, StateError> {
                Ok(($($name::load(input)?,)+))
            }
        }
    )*};
}
tuple_state!(
    (A),
    (A, B),
    (A, B, C),
    (A, B, C, D),
    (A, B, C, D, E),
    (A, B, C, D, E, F),
    (A, B, C, D, E, F, G),
    (A, B, C, D, E, F, G, H),
    (A, B, C, D, E, F, G, H, I),
    (A, B, C, D, E, F, G, H, I, J),
    (A, B, C, D, E, F, G, H, I, J, K),
    (A, B, C, D, E, F, G, H, I, J, K, L)
);

/// Implements [`State`] for a struct by saving its fields in the order given (generated code
/// lists every field of its record and accumulator structs).
#[macro_export]
macro_rules! state_struct {
    ($name:ty { $($field:ident),* $(,)? }) => {
        impl $crate::state::State for $name {
            #[allow(unused_variables)]
            fn save(&self, out: &mut ::std::vec::Vec<u8>) {
                $($crate::state::State::save(&self.$field, out);)*
            }
            #[allow(unused_variables)]
            fn load(input: &mut &[u8]) -> ::std::result::Result<Self, $crate::state::StateError> {
                ::std::result::Result::Ok(Self {
                    $($field: $crate::state::State::load(input)?,)*
                })
            }
        }
    };
}

crate::state_struct!(crate::nexmark::Person {
    id,
    name,
    email_address,
    credit_card,
    city,
    state,
    date_time,
    extra
});
crate::state_struct!(crate::nexmark::Auction {
    id,
    item_name,
    description,
    initial_bid,
    reserve,
    date_time,
    expires,
    seller,
    category,
    extra
});
crate::state_struct!(crate::nexmark::Bid {
    auction,
    bidder,
    price,
    channel,
    url,
    date_time,
    extra
});

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::FastMap;

    #[test]
    fn values_round_trip() {
        let mut map: FastMap<(i64, String), Vec<Option<f64>>> = FastMap::default();
        map.insert((1, "a".into()), vec![Some(1.5), None]);
        map.insert((-7, "ünï".into()), vec![]);
        let bytes = encode(&map);
        assert_eq!(
            decode::<FastMap<(i64, String), Vec<Option<f64>>>>(&bytes),
            Ok(map)
        );
        let tree: BTreeMap<i64, (bool, u32)> = [(3, (true, 9)), (-1, (false, 0))].into();
        assert_eq!(decode(&encode(&tree)), Ok(tree));
    }

    #[test]
    fn damaged_bytes_give_errors_not_panics() {
        let bytes = encode(&vec!["hello".to_string(), "world".to_string()]);
        for cut in 0..bytes.len() {
            assert!(
                decode::<Vec<String>>(&bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        // A huge length prefix is refused before allocating.
        let mut huge = Vec::new();
        u64::MAX.save(&mut huge);
        assert_eq!(decode::<Vec<u8>>(&huge), Err(StateError::Truncated));
        assert_eq!(decode::<bool>(&[2]), Err(StateError::Invalid("bool")));
        assert_eq!(decode::<u8>(&[1, 2]), Err(StateError::Trailing(1)));
    }

    #[test]
    fn generated_structs_round_trip() {
        let bid = crate::nexmark::Bid {
            auction: 1,
            bidder: 2,
            price: 3,
            channel: "Apple".into(),
            url: "u".into(),
            date_time: 4,
            extra: String::new(),
        };
        assert_eq!(decode(&encode(&bid)), Ok(bid));
    }
}
