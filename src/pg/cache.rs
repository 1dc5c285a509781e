//! The one mechanism of per-backend caches: bounded maps whose memory lives in a PostgreSQL
//! memory context.
//!
//! Every cache of the extension (relation OIDs, column numbers, rates, remembered TIDs of slot
//! rows, month settings, campaign budgets, levels sent, scopes with nothing left to send, alert
//! grants) is a [`Cache`]:
//!
//! - **Emptied on invalidation.** It follows a generation number ([`Follows`]) that the relcache
//!   callback of `pg/invalidation.rs` bumps; a cache filled in an older generation is empty at
//!   its next use.
//! - **Bounded.** It holds at most its capacity of entries. Inserting into a full cache empties
//!   it first (its entries are re-read when next needed), so a backend that sees 10^6 distinct
//!   campaigns holds no more than one that sees a few thousand.
//! - **Visible.** Its table, its keys ([`Text`]) and its values ([`Num`], fixed-size types)
//!   are allocated in the memory context `neon_budget caches` (a child of
//!   `TopMemoryContext`), which `pg_backend_memory_contexts` and `pg_log_backend_memory_contexts`
//!   show.
//! - **Typed keys.** Keys are types ([`Text`], tuples, the scope and slot-row keys of the
//!   modules that use them), looked up by borrowed forms without allocating.
use allocator_api2::alloc::{AllocError, Allocator, Layout};
use hashbrown::{DefaultHashBuilder, Equivalent, HashMap};
use pgrx::prelude::*;
use pgrx::AnyNumeric;
use std::borrow::Borrow;
use std::cell::Cell;
use std::hash::{Hash, Hasher};
use std::ptr::NonNull;

thread_local! {
    static CONTEXT: Cell<Option<pg_sys::MemoryContext>> = const { Cell::new(None) };
}

/// The memory context `neon_budget caches` (created under `TopMemoryContext` on first use).
pub fn memory_context() -> pg_sys::MemoryContext {
    if let Some(c) = CONTEXT.with(Cell::get) {
        return c;
    }
    let c = unsafe {
        pg_sys::AllocSetContextCreateInternal(pg_sys::TopMemoryContext, c"neon_budget caches".as_ptr(), 0, 8 * 1024, 8 * 1024 * 1024)
    };
    CONTEXT.with(|cell| cell.set(Some(c)));
    c
}

/// Entries a cache keyed by campaign (or by scope, slot row) holds at most: a backend that
/// writes to more campaigns than this re-reads some of them. About 200 bytes an entry.
pub const PER_CAMPAIGN: usize = 4096;
/// Entries a cache keyed by agent type or month holds at most.
pub const PER_AGENT_TYPE: usize = 1024;

/// palloc's alignment (`MAXIMUM_ALIGNOF` on the platforms PostgreSQL 15 is built for here).
const PALLOC_ALIGN: usize = 8;

/// An allocator that allocates in [`memory_context`]. Alignments above 8 (hash tables' control
/// groups ask for 16) are served by over-allocating and keeping the chunk's address just below
/// the aligned block.
#[derive(Clone, Copy, Default, Debug)]
pub struct CacheAlloc;

unsafe impl Allocator for CacheAlloc {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        let size = layout.size().max(1);
        unsafe {
            let ptr = if layout.align() <= PALLOC_ALIGN {
                pg_sys::MemoryContextAlloc(memory_context(), size).cast::<u8>()
            } else {
                let raw = pg_sys::MemoryContextAlloc(memory_context(), size + layout.align() + PALLOC_ALIGN).cast::<u8>();
                let start = raw as usize + PALLOC_ALIGN;
                let aligned = (start + layout.align() - 1) & !(layout.align() - 1);
                let ptr = aligned as *mut u8;
                ptr.sub(PALLOC_ALIGN).cast::<*mut u8>().write_unaligned(raw);
                ptr
            };
            let ptr = NonNull::new(ptr).ok_or(AllocError)?;
            Ok(NonNull::slice_from_raw_parts(ptr, layout.size()))
        }
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        if layout.align() <= PALLOC_ALIGN {
            pg_sys::pfree(ptr.as_ptr().cast());
        } else {
            let raw = ptr.as_ptr().sub(PALLOC_ALIGN).cast::<*mut u8>().read_unaligned();
            pg_sys::pfree(raw.cast());
        }
    }
}

/// Which invalidations empty a cache.
#[derive(Clone, Copy, Debug)]
pub enum Follows {
    /// Changes to the extension's tables, rates, budgets, thresholds, levels
    /// (`invalidation::generation`).
    Settings,
    /// Revocations of alert grants and changes to budgets and levels
    /// (`invalidation::grant_generation`).
    Grants,
}

impl Follows {
    fn generation(self) -> u64 {
        match self {
            Follows::Settings => super::invalidation::generation(),
            Follows::Grants => super::invalidation::grant_generation(),
        }
    }
}

/// A bounded per-backend cache in [`memory_context`] (see the module documentation).
pub struct Cache<K, V> {
    follows: Follows,
    capacity: usize,
    generation: u64,
    map: HashMap<K, V, DefaultHashBuilder, CacheAlloc>,
}

impl<K: Hash + Eq, V> Cache<K, V> {
    /// An empty cache of at most `capacity` entries (allocates nothing until used).
    pub fn new(follows: Follows, capacity: usize) -> Self {
        Cache { follows, capacity, generation: 0, map: HashMap::with_hasher_in(DefaultHashBuilder::default(), CacheAlloc) }
    }

    /// Empties the map if an invalidation arrived since it was last used.
    fn fresh(&mut self) -> &mut HashMap<K, V, DefaultHashBuilder, CacheAlloc> {
        let g = self.follows.generation();
        if self.generation != g {
            self.generation = g;
            self.clear();
        }
        &mut self.map
    }

    /// The cached value of `key`.
    pub fn get<Q: Hash + Equivalent<K> + ?Sized>(&mut self, key: &Q) -> Option<&V> {
        self.fresh().get(key)
    }

    /// The cached value of `key`, to change it in place.
    pub fn get_mut<Q: Hash + Equivalent<K> + ?Sized>(&mut self, key: &Q) -> Option<&mut V> {
        self.fresh().get_mut(key)
    }

    /// Caches `value` for `key`; a full cache is emptied first.
    pub fn insert(&mut self, key: K, value: V) {
        let capacity = self.capacity;
        let full = {
            let map = self.fresh();
            map.len() >= capacity && !map.contains_key(&key)
        };
        if full {
            self.clear();
        }
        self.map.insert(key, value);
    }

    /// Forgets `key`.
    pub fn remove<Q: Hash + Equivalent<K> + ?Sized>(&mut self, key: &Q) {
        self.fresh().remove(key);
    }

    /// Forgets everything and gives the memory back to the context.
    pub fn clear(&mut self) {
        self.map = HashMap::with_hasher_in(DefaultHashBuilder::default(), CacheAlloc);
    }

    /// How many entries it holds now.
    #[cfg(any(test, feature = "pg_test"))]
    pub fn len(&mut self) -> usize {
        self.fresh().len()
    }
}

impl<K, V> Drop for Cache<K, V> {
    /// At backend exit the context goes with the process: nothing is freed one by one (a
    /// thread-local destructor runs after PostgreSQL's own shutdown).
    fn drop(&mut self) {
        let map = std::mem::replace(&mut self.map, HashMap::with_hasher_in(DefaultHashBuilder::default(), CacheAlloc));
        std::mem::forget(map);
    }
}

/// Text (UTF-8) stored in [`memory_context`]: a cache key such as a campaign id or an agent
/// type. Looked up by `&str` (same hash, same equality).
#[derive(PartialEq, Eq)]
pub struct Text(allocator_api2::vec::Vec<u8, CacheAlloc>);

impl Text {
    /// A copy of `s` in the caches' context.
    pub fn new(s: &str) -> Text {
        let mut v = allocator_api2::vec::Vec::with_capacity_in(s.len(), CacheAlloc);
        v.extend_from_slice(s.as_bytes());
        Text(v)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Only ever built from a &str.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }
}

impl Hash for Text {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl Borrow<str> for Text {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

/// A `numeric` value stored in [`memory_context`] (its varlena bytes).
pub struct Num(allocator_api2::vec::Vec<u8, CacheAlloc>);

impl Num {
    /// A copy of `n` in the caches' context.
    pub fn new(n: &AnyNumeric) -> Num {
        unsafe { Num::from_datum(n.clone().into_datum().expect("a numeric is never NULL")) }
    }

    /// The value (a copy).
    pub fn get(&self) -> AnyNumeric {
        unsafe { AnyNumeric::from_datum(self.datum(), false) }.expect("a stored numeric")
    }

    /// The value as a datum that points into the cache (valid while this `Num` is).
    fn datum(&self) -> pg_sys::Datum {
        pg_sys::Datum::from(self.0.as_ptr())
    }

    /// Compares with `other` (PostgreSQL's `numeric_cmp`), without copying either.
    pub fn compare(&self, other: &Num) -> std::cmp::Ordering {
        let c = unsafe { pgrx::direct_function_call::<i32>(pg_sys::numeric_cmp, &[Some(self.datum()), Some(other.datum())]) };
        c.unwrap_or(0).cmp(&0)
    }

    /// `self - other`, exact (PostgreSQL's `numeric_sub`).
    pub fn sub(&self, other: &Num) -> Num {
        let d = unsafe { pgrx::direct_function_call_as_datum(pg_sys::numeric_sub, &[Some(self.datum()), Some(other.datum())]) };
        unsafe { Num::from_datum(d.expect("numeric_sub of two numerics is not NULL")) }
    }

    /// A copy of the numeric varlena at `datum` (which is then freed).
    unsafe fn from_datum(datum: pg_sys::Datum) -> Num {
        let ptr = datum.cast_mut_ptr::<pg_sys::varlena>();
        let len = pgrx::varlena::varsize_any(ptr.cast());
        let mut v = allocator_api2::vec::Vec::with_capacity_in(len, CacheAlloc);
        v.extend_from_slice(std::slice::from_raw_parts(ptr.cast::<u8>(), len));
        pg_sys::pfree(ptr.cast());
        Num(v)
    }
}

/// A scope of alert levels (the month, or a campaign in a month) as a cache key.
#[derive(PartialEq, Eq)]
pub enum ScopeKey {
    Month { month: Text },
    Campaign { campaign_id: Text, month: Text },
}

/// A borrowed [`ScopeKey`], to look one up without allocating.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ScopeRef<'a> {
    Month { month: &'a str },
    Campaign { campaign_id: &'a str, month: &'a str },
}

impl<'a> ScopeRef<'a> {
    /// The scope of `alert_state` terms: `("month", "", month)` or `("campaign", id, month)`.
    pub fn of(scope: &str, scope_key: &'a str, month: &'a str) -> ScopeRef<'a> {
        if scope == "month" {
            ScopeRef::Month { month }
        } else {
            ScopeRef::Campaign { campaign_id: scope_key, month }
        }
    }

    /// An owned copy, to insert.
    pub fn to_key(self) -> ScopeKey {
        match self {
            ScopeRef::Month { month } => ScopeKey::Month { month: Text::new(month) },
            ScopeRef::Campaign { campaign_id, month } => {
                ScopeKey::Campaign { campaign_id: Text::new(campaign_id), month: Text::new(month) }
            }
        }
    }
}

impl ScopeKey {
    fn as_ref(&self) -> ScopeRef<'_> {
        match self {
            ScopeKey::Month { month } => ScopeRef::Month { month: month.as_str() },
            ScopeKey::Campaign { campaign_id, month } => ScopeRef::Campaign { campaign_id: campaign_id.as_str(), month: month.as_str() },
        }
    }
}

impl Hash for ScopeRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            ScopeRef::Month { month } => {
                state.write_u8(0);
                month.hash(state);
            }
            ScopeRef::Campaign { campaign_id, month } => {
                state.write_u8(1);
                campaign_id.hash(state);
                month.hash(state);
            }
        }
    }
}

impl Hash for ScopeKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_ref().hash(state)
    }
}

impl Equivalent<ScopeKey> for ScopeRef<'_> {
    fn equivalent(&self, key: &ScopeKey) -> bool {
        *self == key.as_ref()
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use super::*;

    fn context_bytes() -> i64 {
        Spi::get_one::<i64>("SELECT total_bytes FROM pg_backend_memory_contexts WHERE name = 'neon_budget caches'").unwrap().unwrap_or(0)
    }

    /// A cache holds at most its capacity, lives in the `neon_budget caches` context, finds
    /// keys by their borrowed forms, and keeps numerics exact.
    #[pg_test]
    fn bounded_visible_and_typed() {
        let mut c: Cache<ScopeKey, Num> = Cache::new(Follows::Settings, 1000);
        for i in 0..10_000 {
            let id = format!("campaign-{i}");
            c.insert(ScopeRef::of("campaign", &id, "2026-11").to_key(), Num::new(&AnyNumeric::from(i)));
            assert!(c.len() <= 1000);
        }
        assert_eq!(c.get(&ScopeRef::of("campaign", "campaign-9999", "2026-11")).map(Num::get), Some(AnyNumeric::from(9999)));
        assert!(c.get(&ScopeRef::of("campaign", "campaign-0", "2026-11")).is_none());
        assert!(c.get(&ScopeRef::of("month", "", "2026-11")).is_none());
        let exact = AnyNumeric::try_from("123456789012345678901234.000000000000000001").unwrap();
        c.insert(ScopeRef::of("month", "", "2026-11").to_key(), Num::new(&exact));
        assert_eq!(c.get(&ScopeRef::of("month", "", "2026-11")).map(Num::get), Some(exact));
        assert!(context_bytes() > 0, "the cache's memory is in the neon_budget caches context");

        let mut t: Cache<Text, i32> = Cache::new(Follows::Settings, 10);
        t.insert(Text::new("CONTENT"), 7);
        assert_eq!(t.get("CONTENT"), Some(&7));
        assert_eq!(t.get("CONTENT "), None);
    }
}
