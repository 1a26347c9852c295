//! The plan of a backfill run: each type's slices of its `created` range, which slice a fetcher
//! is on, and where a slice splits when a fetcher would otherwise wait.
//!
//! Stripe lists newest first and pages by cursor only, so one list is one page at a time: a round
//! trip each. To have several pages of one type in flight, a type is cut into slices of its
//! `created` range (`created[gte]`, `created[lt]`), each paged by its own cursor. Where the
//! objects lie in time is not known in advance, so slices are made on demand: when a page comes
//! back and more fetchers wait than there are free slices (of any type), the part of the slice
//! not yet fetched (older than the page's oldest object) is cut, into as many new slices as
//! fetchers would still wait (at most `MAX_PARTS`), where the page says objects are likely: the
//! page spanned `d` seconds for 100 objects, so the slice keeps the next `d` seconds (about one
//! page) and its cursor, new slices take the next 2d, 4d, 8d… seconds (about 2, 4, 8… pages if
//! objects are as dense), and the last one everything older. Young data costs at most one empty
//! slice (one request); old, dense data is cut again whenever fetchers wait. Every object lies in
//! exactly one slice, so nothing is fetched twice, and a list that ignores `created` filters is
//! noticed by the first object outside its slice: the type goes back to one slice (slice 0, whose
//! cursor then walks the whole list) and the others are dropped.

use std::time::Instant;

use crate::domain::resource::Resource;
use crate::stripe::Created;

/// At most this many new slices from one page.
const MAX_PARTS: usize = 8;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slice {
    pub resource: Resource,
    /// 0 for the type's first slice (no upper bound); new slices count up.
    pub id: i64,
    pub range: Created,
    pub cursor: Option<String>,
    pub done: bool,
    pub fetched: i64,
    pub pages: i64,
    /// A fetcher has it (or it waits for the page that made it to be committed).
    busy: bool,
}

impl Slice {
    pub fn new(resource: Resource, id: i64, range: Created, cursor: Option<String>) -> Slice {
        Slice {
            resource,
            id,
            range,
            cursor,
            done: false,
            fetched: 0,
            pages: 0,
            busy: false,
        }
    }
}

/// One type of the run.
#[derive(Clone, Debug)]
pub struct TypeRun {
    pub resource: Resource,
    pub fetched: i64,
    pub applied: i64,
    pub pages: i64,
    /// Objects fetched in this run (for its rate).
    pub fetched_now: i64,
    /// Slices are used until the list is seen to ignore `created` filters.
    pub sliced: bool,
    pub skipped: Option<String>,
    pub next_slice: i64,
}

/// What one page brought.
#[derive(Clone, Debug, Default)]
pub struct Page {
    /// The id of the page's last object (the slice's next cursor).
    pub last_id: Option<String>,
    pub count: i64,
    pub has_more: bool,
    /// `created` of every object of the page, in list order (`None` where an object has none).
    pub created: Vec<Option<i64>>,
    /// Requests made for the page (the list call and any nested lists).
    pub requests: i64,
}

/// What a page changed, to be written with it.
#[derive(Clone, Debug, Default)]
pub struct Changes {
    /// The page's slice and the slices split off it, as they are now.
    pub slices: Vec<Slice>,
    /// Slices dropped because the list ignores `created` filters.
    pub dropped: Vec<i64>,
    /// The type's slicing flag after the page.
    pub sliced: bool,
    /// Objects of the page counted as fetched.
    pub fetched: i64,
    /// Whether the page's objects count (not when its slice repeats what slice 0 walks); those
    /// applied are counted once it is written (`count_applied`).
    pub counted: bool,
}

pub struct Plan {
    pub types: Vec<TypeRun>,
    slices: Vec<Slice>,
    /// Fetchers waiting for a slice.
    pub idle: usize,
    /// A fetcher failed: the others stop taking slices.
    pub failed: bool,
    pub started: Instant,
    /// Requests made in this run.
    pub requests: i64,
    since: Option<i64>,
}

impl Plan {
    pub fn new(types: Vec<TypeRun>, slices: Vec<Slice>, since: Option<i64>) -> Plan {
        Plan {
            types,
            slices,
            idle: 0,
            failed: false,
            started: Instant::now(),
            requests: 0,
            since,
        }
    }

    /// The next slice to fetch (types in the order given, then slices by id), now busy.
    pub fn take(&mut self) -> Option<Slice> {
        let order = |s: &Slice| {
            let at = self
                .types
                .iter()
                .position(|t| t.resource == s.resource)
                .unwrap_or(usize::MAX);
            (at, s.id)
        };
        let next = self
            .slices
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.done && !s.busy)
            .min_by_key(|(_, s)| order(s))
            .map(|(i, _)| i)?;
        self.slices[next].busy = true;
        Some(self.slices[next].clone())
    }

    /// Every slice is done.
    pub fn finished(&self) -> bool {
        self.slices.iter().all(|s| s.done)
    }

    /// Slices of a type being fetched now.
    pub fn in_flight(&self, resource: Resource) -> usize {
        self.slices
            .iter()
            .filter(|s| s.resource == resource && s.busy && !s.done)
            .count()
    }

    pub fn type_run(&self, resource: Resource) -> Option<&TypeRun> {
        self.types.iter().find(|t| t.resource == resource)
    }

    /// Whether the type has no slice left to fetch.
    pub fn type_done(&self, resource: Resource) -> bool {
        self.slices.iter().filter(|s| s.resource == resource).all(|s| s.done)
    }

    /// The key may not read a type: every slice of it is done, with the reason.
    pub fn skip(&mut self, resource: Resource, reason: &str) {
        for s in self.slices.iter_mut().filter(|s| s.resource == resource) {
            s.done = true;
        }
        if let Some(t) = self.types.iter_mut().find(|t| t.resource == resource) {
            t.skipped = Some(reason.to_string());
        }
    }

    /// Records a page of slice `id` of `resource`; the slice and any new ones stay busy until
    /// `release` (after the page is committed), so nobody fetches from a state not yet stored.
    pub fn record(&mut self, resource: Resource, id: i64, page: &Page) -> Changes {
        let since = self.since;
        let idle = self.idle;
        let free = self.slices.iter().filter(|s| !s.done && !s.busy).count();
        self.requests += page.requests;
        let Some(at) = self.slices.iter().position(|s| s.resource == resource && s.id == id) else {
            return Changes::default();
        };
        let Some(t) = self.types.iter_mut().find(|t| t.resource == resource) else {
            return Changes::default();
        };
        let slice = &mut self.slices[at];
        if slice.done {
            // Dropped while its page was in flight (the list ignores filters): a repeat.
            return Changes {
                slices: vec![slice.clone()],
                sliced: t.sliced,
                ..Default::default()
            };
        }
        // A bound of the slice's own (not the run's `since`, which an older server may ignore)
        // crossed: the list ignores `created` filters.
        let bounds = Created {
            gte: slice.range.gte.filter(|g| Some(*g) != since),
            lt: slice.range.lt,
        };
        let ignored = t.sliced && page.created.iter().flatten().any(|c| !bounds.contains(*c));
        let mut changes = Changes {
            sliced: t.sliced && !ignored,
            // A page another slice than 0 got from a list ignoring filters repeats what slice 0
            // walks: not counted.
            fetched: if ignored && slice.id != 0 { 0 } else { page.count },
            counted: !(ignored && slice.id != 0),
            ..Default::default()
        };
        t.fetched += changes.fetched;
        t.fetched_now += changes.fetched;
        t.pages += 1;
        slice.cursor = page.last_id.clone().or(slice.cursor.take());
        slice.fetched += changes.fetched;
        slice.pages += 1;
        slice.done = !page.has_more || page.count == 0;
        if ignored {
            t.sliced = false;
            for other in self.slices.iter_mut().filter(|s| s.resource == resource) {
                if other.id == 0 {
                    // Slice 0 walks the whole list by its cursor from now on.
                    other.range = Created::since(since);
                } else {
                    other.done = true;
                    changes.dropped.push(other.id);
                }
            }
            changes.slices.push(self.slices[at].clone());
            return changes;
        }
        let slice = self.slices[at].clone();
        changes.slices.push(slice.clone());
        let newest = page.created.first().copied().flatten();
        let oldest = page.created.last().copied().flatten();
        let (Some(newest), Some(oldest), false, true) = (newest, oldest, slice.done, t.sliced) else {
            return changes;
        };
        // Cut for the fetchers the free slices leave waiting (of any type: with one free
        // customers' slice and thirty fetchers waiting, charges are cut too).
        let waiting = idle.saturating_sub(free);
        if waiting == 0 {
            return changes;
        }
        let bounds = split_points(slice.range.gte, newest, oldest, waiting.min(MAX_PARTS));
        tracing::debug!(
            resource = resource.table(),
            slice = id,
            waiting,
            parts = bounds.len(),
            "slice cut"
        );
        let Some(top) = bounds.last().copied() else {
            return changes;
        };
        let mut lower = slice.range.gte;
        for bound in bounds {
            let mut part = Slice::new(
                resource,
                t.next_slice,
                Created {
                    gte: lower,
                    lt: Some(bound),
                },
                None,
            );
            t.next_slice += 1;
            part.busy = true;
            lower = Some(bound);
            changes.slices.push(part.clone());
            self.slices.push(part);
        }
        self.slices[at].range.gte = Some(top);
        changes.slices[0] = self.slices[at].clone();
        changes
    }

    /// Objects of a recorded page applied (known once it is written).
    pub fn count_applied(&mut self, resource: Resource, applied: i64) {
        if let Some(t) = self.types.iter_mut().find(|t| t.resource == resource) {
            t.applied += applied;
        }
    }

    /// The page of slice `id` and the slices it made are stored: others may take them.
    pub fn release(&mut self, resource: Resource, ids: &[i64]) {
        for s in self
            .slices
            .iter_mut()
            .filter(|s| s.resource == resource && ids.contains(&s.id))
        {
            s.busy = false;
        }
    }
}

/// Where to cut the not yet fetched part of a slice (above its lower bound `gte`, at most
/// `oldest`, the page's oldest object) after a page spanning `newest` to `oldest`: increasing
/// bounds `b_k < … < b_1` with `b_i = oldest - (2^i - 1) d`, `d` the page's span (at least a
/// second), at most `parts` of them and all above `gte` (above 0 when open). The slice keeps
/// `[b_1, …)`, new slices take `[b_2, b_1)` … `[b_k, b_(k-1))` and `[gte, b_k)`. Empty when
/// nothing is left to cut.
pub fn split_points(gte: Option<i64>, newest: i64, oldest: i64, parts: usize) -> Vec<i64> {
    let low = gte.unwrap_or(0);
    let span = newest.saturating_sub(oldest).max(1);
    let mut bounds = Vec::new();
    let mut pages: i64 = 1;
    while bounds.len() < parts {
        let bound = oldest.saturating_sub(span.saturating_mul(pages));
        if bound <= low {
            break;
        }
        bounds.push(bound);
        pages = pages.saturating_mul(2).saturating_add(1);
    }
    bounds.reverse();
    bounds
}

#[cfg(test)]
mod tests {
    use super::*;

    fn type_run(resource: Resource) -> TypeRun {
        TypeRun {
            resource,
            fetched: 0,
            applied: 0,
            pages: 0,
            fetched_now: 0,
            sliced: true,
            skipped: None,
            next_slice: 1,
        }
    }

    fn page(created: &[i64], has_more: bool) -> Page {
        Page {
            last_id: Some(format!("obj_{}", created.last().copied().unwrap_or(0))),
            count: created.len() as i64,
            has_more,
            created: created.iter().map(|c| Some(*c)).collect(),
            requests: 1,
        }
    }

    #[test]
    fn split_points_follow_the_pages_density_and_stay_above_the_lower_bound() {
        // A page from 2000 down to 1900: the slice keeps [1800, …), then 2, 4 pages' worth.
        assert_eq!(split_points(None, 2000, 1900, 3), vec![1200, 1600, 1800]);
        assert_eq!(
            split_points(Some(1500), 2000, 1900, 8),
            vec![1600, 1800],
            "nothing below 1500"
        );
        assert_eq!(
            split_points(Some(1899), 2000, 1900, 3),
            Vec::<i64>::new(),
            "nothing left to cut"
        );
        // Every object of the page in one second: cut by the second.
        assert_eq!(split_points(Some(1000), 1900, 1900, 2), vec![1897, 1899]);
    }

    #[test]
    fn an_idle_fetcher_gets_the_older_part_of_a_slice_and_nothing_is_covered_twice() {
        let types = vec![type_run(Resource::Charge)];
        let slices = vec![Slice::new(Resource::Charge, 0, Created::since(Some(1000)), None)];
        let mut plan = Plan::new(types, slices, Some(1000));
        let first = plan.take().unwrap();
        assert_eq!(plan.take(), None, "one slice, taken");
        plan.idle = 2;
        let changes = plan.record(Resource::Charge, first.id, &page(&[2000, 1900], true));
        // The page spanned 100 s: slice 0 keeps [1800, ∞) after its cursor, [1600, 1800) and
        // [1000, 1600) are new.
        let ranges: Vec<(i64, Created)> = changes.slices.iter().map(|s| (s.id, s.range)).collect();
        assert_eq!(
            ranges,
            vec![
                (
                    0,
                    Created {
                        gte: Some(1800),
                        lt: None
                    }
                ),
                (
                    1,
                    Created {
                        gte: Some(1000),
                        lt: Some(1600)
                    }
                ),
                (
                    2,
                    Created {
                        gte: Some(1600),
                        lt: Some(1800)
                    }
                ),
            ]
        );
        assert_eq!(changes.slices[0].cursor.as_deref(), Some("obj_1900"));
        assert_eq!(plan.take(), None, "not taken before the page is committed");
        plan.release(Resource::Charge, &[0, 1, 2]);
        assert_eq!(plan.take().map(|s| s.id), Some(0));
        assert_eq!(plan.take().map(|s| s.id), Some(1));
        assert_eq!(plan.type_run(Resource::Charge).unwrap().fetched, 2);
    }

    #[test]
    fn no_split_without_an_idle_fetcher_or_when_a_slice_is_free() {
        let types = vec![type_run(Resource::Charge), type_run(Resource::Customer)];
        let slices = vec![
            Slice::new(Resource::Charge, 0, Created::ALL, None),
            Slice::new(Resource::Customer, 0, Created::ALL, None),
        ];
        let mut plan = Plan::new(types, slices, None);
        let charge = plan.take().unwrap();
        let t = 1_700_000_000;
        assert_eq!(
            plan.record(Resource::Charge, charge.id, &page(&[t], true)).slices.len(),
            1,
            "nobody idle"
        );
        plan.release(Resource::Charge, &[0]);
        plan.idle = 1;
        // Customers' slice is still free: the idle fetcher takes that instead.
        let charge = plan.take().unwrap();
        assert_eq!(charge.resource, Resource::Charge);
        assert_eq!(plan.record(Resource::Charge, 0, &page(&[t - 1], true)).slices.len(), 1);
    }

    #[test]
    fn fetchers_a_free_slice_leaves_waiting_get_parts_of_another_type() {
        // Customers first: at the start of a run the fetchers take customers' slices, and a
        // customers' slice left free for a moment kept charges from being cut at all (measured:
        // charges stayed on one slice for the first seconds of the live-mode benchmark).
        let types = vec![type_run(Resource::Customer), type_run(Resource::Charge)];
        let slices = vec![
            Slice::new(Resource::Customer, 0, Created::ALL, None),
            Slice::new(Resource::Charge, 0, Created::ALL, None),
        ];
        let mut plan = Plan::new(types, slices, None);
        let customer = plan.take().unwrap();
        let charge = plan.take().unwrap();
        assert_eq!(
            (customer.resource, charge.resource),
            (Resource::Customer, Resource::Charge)
        );
        plan.record(Resource::Customer, customer.id, &page(&[1_700_000_000], true));
        plan.release(Resource::Customer, &[customer.id]);
        // One customers' slice free, four fetchers waiting: three are left without a slice.
        plan.idle = 4;
        let t = 1_700_000_000;
        let changes = plan.record(Resource::Charge, charge.id, &page(&[t, t - 100], true));
        assert_eq!(changes.slices.len(), 1 + 3, "the charges' slice and three new ones");
        assert!(changes.slices.iter().all(|s| s.resource == Resource::Charge));
        // As many waiting as free: nothing cut.
        plan.release(
            Resource::Charge,
            &changes.slices.iter().map(|s| s.id).collect::<Vec<_>>(),
        );
        plan.idle = 0;
        let again = plan.take().unwrap();
        plan.idle = plan.slices.iter().filter(|s| !s.done && !s.busy).count();
        assert_eq!(
            plan.record(again.resource, again.id, &page(&[t - 200, t - 300], true))
                .slices
                .len(),
            1
        );
    }

    #[test]
    fn a_list_that_ignores_created_filters_goes_back_to_one_slice() {
        let types = vec![type_run(Resource::Customer)];
        let slices = vec![
            Slice::new(
                Resource::Customer,
                0,
                Created {
                    gte: Some(1500),
                    lt: None,
                },
                Some("cus_a".into()),
            ),
            Slice::new(
                Resource::Customer,
                1,
                Created {
                    gte: None,
                    lt: Some(1500),
                },
                None,
            ),
        ];
        let mut plan = Plan::new(types, slices, None);
        let zero = plan.take().unwrap();
        let one = plan.take().unwrap();
        assert_eq!((zero.id, one.id), (0, 1));
        // Slice 1 asked for objects before 1500 and got the newest ones.
        let changes = plan.record(Resource::Customer, 1, &page(&[2000, 1999], true));
        assert!(!changes.sliced);
        assert_eq!(changes.dropped, vec![1]);
        assert!(!plan.type_done(Resource::Customer));
        plan.release(Resource::Customer, &[1]);
        // Slice 0 continues over everything, with its cursor.
        let changes = plan.record(Resource::Customer, 0, &page(&[1200, 1100], false));
        assert_eq!(changes.slices[0].range, Created::ALL);
        assert!(plan.finished());
    }

    #[test]
    fn the_runs_since_is_not_taken_for_a_filter_the_list_ignored() {
        let types = vec![type_run(Resource::Customer)];
        let slices = vec![Slice::new(Resource::Customer, 0, Created::since(Some(5000)), None)];
        let mut plan = Plan::new(types, slices, Some(5000));
        plan.take();
        let changes = plan.record(Resource::Customer, 0, &page(&[6000, 4000], true));
        assert!(changes.sliced, "objects before since do not turn slicing off");
    }
}
