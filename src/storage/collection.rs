//! Records kept by id with ordered secondary indexes (`parent → records by time`).

use redb::{
    ReadTransaction, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction,
};
use serde::{Serialize, de::DeserializeOwned};

use super::{Result, StorageError};

/// An ordered secondary index: `parent \0 time id → ()`.
pub struct Index {
    pub name: &'static str,
    pub table: TableDefinition<'static, &'static [u8], ()>,
}

/// A kind of record: a table `id → JSON` and its indexes.
pub struct Collection {
    pub name: &'static str,
    pub records: TableDefinition<'static, &'static str, &'static [u8]>,
    pub indexes: &'static [Index],
}

impl Collection {
    pub(super) fn create_tables(&self, tx: &WriteTransaction) -> Result<()> {
        tx.open_table(self.records)?;
        for index in self.indexes {
            tx.open_table(index.table)?;
        }
        Ok(())
    }
}

/// Something stored in a [`Collection`].
pub trait Record: Serialize + DeserializeOwned {
    const COLLECTION: &'static Collection;
    fn id(&self) -> &str;
    /// For each index of the collection (same order): the parent key and the time to order by.
    fn index_keys(&self) -> Vec<(String, u64)>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Oldest,
    Newest,
}

macro_rules! index {
    ($name:literal, $table:literal) => {
        Index {
            name: $name,
            table: TableDefinition::new($table),
        }
    };
}

/// Memory threads, by resource.
pub static THREADS: Collection = Collection {
    name: "threads",
    records: TableDefinition::new("threads"),
    indexes: &[index!("by_resource", "threads_by_resource")],
};
/// Memory messages, by thread and by resource.
pub static MESSAGES: Collection = Collection {
    name: "messages",
    records: TableDefinition::new("messages"),
    indexes: &[
        index!("by_thread", "messages_by_thread"),
        index!("by_resource", "messages_by_resource"),
    ],
};
/// Working memory, one per resource or thread.
pub static WORKING_MEMORY: Collection = Collection {
    name: "working_memory",
    records: TableDefinition::new("working_memory"),
    indexes: &[],
};
/// Workflow runs and their snapshots, by workflow.
pub static WORKFLOW_RUNS: Collection = Collection {
    name: "workflow_runs",
    records: TableDefinition::new("workflow_runs"),
    indexes: &[index!("by_workflow", "workflow_runs_by_workflow")],
};
/// Scores, by run, by scorer and by entity.
pub static SCORES: Collection = Collection {
    name: "scores",
    records: TableDefinition::new("scores"),
    indexes: &[
        index!("by_run", "scores_by_run"),
        index!("by_scorer", "scores_by_scorer"),
        index!("by_entity", "scores_by_entity"),
    ],
};
/// Legacy eval rows, by agent.
pub static EVALS: Collection = Collection {
    name: "evals",
    records: TableDefinition::new("evals"),
    indexes: &[index!("by_agent", "evals_by_agent")],
};
/// A2A tasks, by agent.
pub static A2A_TASKS: Collection = Collection {
    name: "a2a_tasks",
    records: TableDefinition::new("a2a_tasks"),
    indexes: &[index!("by_agent", "a2a_tasks_by_agent")],
};

pub(super) static ALL: &[&Collection] = &[
    &THREADS,
    &MESSAGES,
    &WORKING_MEMORY,
    &WORKFLOW_RUNS,
    &SCORES,
    &EVALS,
    &A2A_TASKS,
];

/// `parent \0 time(be) id`: sorts by parent, then time, then id.
pub fn index_key(parent: &str, time: u64, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(parent.len() + 9 + id.len());
    k.extend_from_slice(parent.as_bytes());
    k.push(0);
    k.extend_from_slice(&time.to_be_bytes());
    k.extend_from_slice(id.as_bytes());
    k
}

fn prefix_bounds(parent: &str) -> (Vec<u8>, Vec<u8>) {
    let mut lo = parent.as_bytes().to_vec();
    lo.push(0);
    let mut hi = parent.as_bytes().to_vec();
    hi.push(1);
    (lo, hi)
}

fn check_key(what: &str, s: &str) -> Result<()> {
    if s.contains('\0') {
        return Err(StorageError::Invalid(format!(
            "{what} must not contain a NUL character"
        )));
    }
    Ok(())
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    Ok(serde_json::from_slice(bytes)?)
}

/// Inserts or replaces a record and keeps its index entries in step. Returns the old record.
pub fn put<T: Record>(tx: &WriteTransaction, record: &T) -> Result<Option<T>> {
    let c = T::COLLECTION;
    check_key("an id", record.id())?;
    let keys = record.index_keys();
    debug_assert_eq!(keys.len(), c.indexes.len());
    for (parent, _) in &keys {
        check_key("a parent id", parent)?;
    }
    let old = remove::<T>(tx, record.id())?;
    let bytes = serde_json::to_vec(record)?;
    tx.open_table(c.records)?
        .insert(record.id(), bytes.as_slice())?;
    for (index, (parent, time)) in c.indexes.iter().zip(keys) {
        tx.open_table(index.table)?
            .insert(index_key(&parent, time, record.id()).as_slice(), ())?;
    }
    Ok(old)
}

/// Removes a record and its index entries. Returns it if it existed.
pub fn remove<T: Record>(tx: &WriteTransaction, id: &str) -> Result<Option<T>> {
    let c = T::COLLECTION;
    let old: Option<T> = match tx.open_table(c.records)?.remove(id)? {
        Some(bytes) => Some(decode(bytes.value())?),
        None => None,
    };
    if let Some(old) = &old {
        for (index, (parent, time)) in c.indexes.iter().zip(old.index_keys()) {
            tx.open_table(index.table)?
                .remove(index_key(&parent, time, id).as_slice())?;
        }
    }
    Ok(old)
}

/// Reads a record by id.
pub fn get<T: Record>(tx: &ReadTransaction, id: &str) -> Result<Option<T>> {
    match tx.open_table(T::COLLECTION.records)?.get(id)? {
        Some(bytes) => Ok(Some(decode(bytes.value())?)),
        None => Ok(None),
    }
}

/// Reads a record by id inside a write transaction (read-modify-write).
pub fn get_for_update<T: Record>(tx: &WriteTransaction, id: &str) -> Result<Option<T>> {
    match tx.open_table(T::COLLECTION.records)?.get(id)? {
        Some(bytes) => Ok(Some(decode(bytes.value())?)),
        None => Ok(None),
    }
}

/// Ids of the records under `parent` in index number `index`, ordered by time.
pub fn ids_by<T: Record>(
    tx: &ReadTransaction,
    index: usize,
    parent: &str,
    order: Order,
) -> Result<Vec<String>> {
    ids_in(
        &tx.open_table(T::COLLECTION.indexes[index].table)?,
        parent,
        order,
    )
}

/// [`ids_by`] inside a write transaction (to delete what an index lists).
pub fn ids_by_for_update<T: Record>(
    tx: &WriteTransaction,
    index: usize,
    parent: &str,
    order: Order,
) -> Result<Vec<String>> {
    ids_in(
        &tx.open_table(T::COLLECTION.indexes[index].table)?,
        parent,
        order,
    )
}

fn ids_in(
    table: &impl ReadableTable<&'static [u8], ()>,
    parent: &str,
    order: Order,
) -> Result<Vec<String>> {
    let (lo, hi) = prefix_bounds(parent);
    let mut ids = Vec::new();
    scan(table, parent, (&lo, &hi), order, |id| {
        ids.push(String::from_utf8_lossy(id).into_owned());
        Ok(())
    })?;
    Ok(ids)
}

/// Calls `visit` with the record id of each index key of `parent` in `lo..hi`, in `order`.
fn scan(
    table: &impl ReadableTable<&'static [u8], ()>,
    parent: &str,
    (lo, hi): (&[u8], &[u8]),
    order: Order,
    mut visit: impl FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    let range = table.range(lo..hi)?;
    // `parent \0 time(8 bytes) id`
    let id_at = parent.len() + 9;
    let mut each = |entry: std::result::Result<
        (redb::AccessGuard<&[u8]>, redb::AccessGuard<()>),
        redb::StorageError,
    >|
     -> Result<()> {
        let (key, _) = entry?;
        let key = key.value();
        visit(key.get(id_at..).unwrap_or_default())
    };
    match order {
        Order::Oldest => range.into_iter().try_for_each(&mut each),
        Order::Newest => range.rev().try_for_each(&mut each),
    }
}

/// Records under `parent` in index number `index`, ordered by time.
pub fn list_by<T: Record>(
    tx: &ReadTransaction,
    index: usize,
    parent: &str,
    order: Order,
) -> Result<Vec<T>> {
    let records = tx.open_table(T::COLLECTION.records)?;
    let mut out = Vec::new();
    for id in ids_by::<T>(tx, index, parent, order)? {
        if let Some(bytes) = records.get(id.as_str())? {
            out.push(decode(bytes.value())?);
        }
    }
    Ok(out)
}

/// Which part of an index a paged read looks at: the records with an index time in `times`
/// (inclusive), in `order`, of which `skip` matching ones are passed over and at most `take`
/// kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub order: Order,
    pub times: (u64, u64),
    pub skip: usize,
    pub take: usize,
}

impl Window {
    /// Every time; `skip` then `take` records.
    pub fn new(order: Order, skip: usize, take: usize) -> Window {
        Window {
            order,
            times: (0, u64::MAX),
            skip,
            take,
        }
    }

    /// Only index times from `from` to `to` (both inclusive, either open).
    pub fn between(self, from: Option<u64>, to: Option<u64>) -> Window {
        Window {
            times: (from.unwrap_or(0), to.unwrap_or(u64::MAX)),
            ..self
        }
    }

    fn holds(&self, position: usize) -> bool {
        position >= self.skip && position - self.skip < self.take
    }
}

/// One page of a paged read and how many records matched in all.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: usize,
}

/// A page of the records under `parent` in index number `index` (see [`Window`]), with the
/// number that matched in all. Without `keep`, only the page's records are read and the rest
/// are counted from the index; with it, each record in the window is read, tested and dropped
/// unless it is on the page. Either way memory holds one page, however many records there are.
pub fn page_by<T: Record>(
    tx: &ReadTransaction,
    index: usize,
    parent: &str,
    window: &Window,
    keep: Option<&dyn Fn(&T) -> bool>,
) -> Result<Page<T>> {
    let table = tx.open_table(T::COLLECTION.indexes[index].table)?;
    let records = tx.open_table(T::COLLECTION.records)?;
    let (lo, hi) = if window.times.0 > window.times.1 {
        (index_key(parent, 0, ""), index_key(parent, 0, ""))
    } else {
        let lo = index_key(parent, window.times.0, "");
        let hi = match window.times.1.checked_add(1) {
            Some(end) => index_key(parent, end, ""),
            None => prefix_bounds(parent).1,
        };
        (lo, hi)
    };
    let mut page = Page {
        items: Vec::new(),
        total: 0,
    };
    let read = |id: &[u8]| -> Result<Option<T>> {
        let id = String::from_utf8_lossy(id);
        records
            .get(id.as_ref())?
            .map(|bytes| decode(bytes.value()))
            .transpose()
    };
    scan(&table, parent, (&lo, &hi), window.order, |id| {
        match keep {
            None => {
                if window.holds(page.total) {
                    page.items.extend(read(id)?);
                }
                page.total += 1;
            }
            Some(keep) => {
                if let Some(record) = read(id)?.filter(|r| keep(r)) {
                    if window.holds(page.total) {
                        page.items.push(record);
                    }
                    page.total += 1;
                }
            }
        }
        Ok(())
    })?;
    Ok(page)
}

/// Number of records in the collection.
pub fn count<T: Record>(tx: &ReadTransaction) -> Result<u64> {
    Ok(tx.open_table(T::COLLECTION.records)?.len()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Store;
    use serde::Deserialize;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Thread {
        id: String,
        resource: String,
        created: u64,
    }

    impl Record for Thread {
        const COLLECTION: &'static Collection = &THREADS;
        fn id(&self) -> &str {
            &self.id
        }
        fn index_keys(&self) -> Vec<(String, u64)> {
            vec![(self.resource.clone(), self.created)]
        }
    }

    fn t(id: &str, resource: &str, created: u64) -> Thread {
        Thread {
            id: id.into(),
            resource: resource.into(),
            created,
        }
    }

    #[test]
    fn lists_by_parent_in_time_order_and_keeps_indexes_in_step() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .write_blocking(|tx| {
                put(tx, &t("b", "r1", 20))?;
                put(tx, &t("a", "r1", 10))?;
                put(tx, &t("c", "r2", 5))?;
                // A resource whose name is a prefix of another's must not see its records.
                put(tx, &t("d", "r", 1))?;
                Ok(())
            })
            .unwrap();
        let ids = |order| {
            store
                .read_blocking(|tx| ids_by::<Thread>(tx, 0, "r1", order))
                .unwrap()
        };
        assert_eq!(ids(Order::Oldest), ["a", "b"]);
        assert_eq!(ids(Order::Newest), ["b", "a"]);

        // Moving a record to another parent and time re-indexes it.
        let old = store
            .write_blocking(|tx| put(tx, &t("a", "r2", 30)))
            .unwrap();
        assert_eq!(old, Some(t("a", "r1", 10)));
        assert_eq!(ids(Order::Oldest), ["b"]);
        let r2 = store
            .read_blocking(|tx| list_by::<Thread>(tx, 0, "r2", Order::Oldest))
            .unwrap();
        assert_eq!(r2, [t("c", "r2", 5), t("a", "r2", 30)]);

        let gone = store
            .write_blocking(|tx| remove::<Thread>(tx, "b"))
            .unwrap();
        assert!(gone.is_some());
        assert!(ids(Order::Oldest).is_empty());
        assert_eq!(store.read_blocking(count::<Thread>).unwrap(), 3);
    }

    #[test]
    fn pages_read_one_window_and_count_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .write_blocking(|tx| {
                for i in 0..10u64 {
                    put(tx, &t(&format!("t{i}"), "r", 100 + i))?;
                }
                put(tx, &t("other", "r2", 105))?;
                Ok(())
            })
            .unwrap();
        let page = |window: Window, keep: Option<&dyn Fn(&Thread) -> bool>| {
            let p = store
                .read_blocking(|tx| page_by::<Thread>(tx, 0, "r", &window, keep))
                .unwrap();
            let ids: Vec<String> = p.items.into_iter().map(|t| t.id).collect();
            (ids, p.total)
        };
        assert_eq!(
            page(Window::new(Order::Newest, 0, 3), None),
            (vec!["t9".into(), "t8".into(), "t7".into()], 10)
        );
        assert_eq!(
            page(Window::new(Order::Oldest, 8, 5), None),
            (vec!["t8".into(), "t9".into()], 10)
        );
        assert_eq!(page(Window::new(Order::Oldest, 50, 5), None), (vec![], 10));
        // Times are inclusive at both ends and limit the total too.
        assert_eq!(
            page(
                Window::new(Order::Oldest, 0, 100).between(Some(102), Some(104)),
                None
            ),
            (vec!["t2".into(), "t3".into(), "t4".into()], 3)
        );
        assert_eq!(
            page(
                Window::new(Order::Oldest, 0, 100).between(Some(5), Some(4)),
                None
            ),
            (vec![], 0)
        );
        assert_eq!(
            page(
                Window::new(Order::Oldest, 0, 100).between(Some(109), None),
                None
            ),
            (vec!["t9".into()], 1)
        );
        // A filter counts only what it keeps, and skips among those.
        let odd = |t: &Thread| t.created % 2 == 1;
        assert_eq!(
            page(Window::new(Order::Newest, 1, 2), Some(&odd)),
            (vec!["t7".into(), "t5".into()], 5)
        );
        assert_eq!(page(Window::new(Order::Newest, 0, usize::MAX), None).1, 10);
    }

    #[test]
    fn writes_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            store
                .write_blocking(|tx| put(tx, &t("x", "r", 1)).map(|_| ()))
                .unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let x = store.read_blocking(|tx| get::<Thread>(tx, "x")).unwrap();
        assert_eq!(x, Some(t("x", "r", 1)));
    }

    #[test]
    fn nul_in_ids_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let err = store
            .write_blocking(|tx| put(tx, &t("a\0b", "r", 1)))
            .unwrap_err();
        assert!(matches!(err, StorageError::Invalid(_)));
    }
}
