//! Append-only journals (logs, trace spans): entries numbered in arrival order, an optional index
//! by a key (a log's runId), paging scans with a filter, and retention by row count and age.

use redb::{
    ReadTransaction, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction,
};
use serde::{Serialize, de::DeserializeOwned};

use super::Result;

pub struct Journal {
    pub name: &'static str,
    pub entries: TableDefinition<'static, u64, &'static [u8]>,
    /// `key \0 seq(be) → ()`
    pub by_key: TableDefinition<'static, &'static [u8], ()>,
}

impl Journal {
    pub(super) fn create_tables(&self, tx: &WriteTransaction) -> Result<()> {
        tx.open_table(self.entries)?;
        tx.open_table(self.by_key)?;
        Ok(())
    }
}

pub static LOGS: Journal = Journal {
    name: "logs",
    entries: TableDefinition::new("logs"),
    by_key: TableDefinition::new("logs_by_run"),
};
pub static SPANS: Journal = Journal {
    name: "spans",
    entries: TableDefinition::new("spans"),
    by_key: TableDefinition::new("spans_by_trace"),
};

pub(super) static ALL: &[&Journal] = &[&LOGS, &SPANS];

/// Something appended to a [`Journal`].
pub trait Entry: Serialize + DeserializeOwned {
    const JOURNAL: &'static Journal;
    /// Milliseconds since the epoch, for age-based retention.
    fn time_ms(&self) -> u64;
    /// The key this entry is indexed under, if any.
    fn key(&self) -> Option<&str>;
}

fn key_entry(key: &str, seq: u64) -> Vec<u8> {
    let mut k = key.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// Appends entries in order.
pub fn append<T: Entry>(tx: &WriteTransaction, items: &[T]) -> Result<()> {
    let j = T::JOURNAL;
    let mut entries = tx.open_table(j.entries)?;
    let mut by_key = tx.open_table(j.by_key)?;
    let first = entries.last()?.map(|(k, _)| k.value() + 1).unwrap_or(0);
    for (seq, item) in (first..).zip(items) {
        entries.insert(seq, serde_json::to_vec(item)?.as_slice())?;
        if let Some(key) = item.key().filter(|k| !k.contains('\0')) {
            by_key.insert(key_entry(key, seq).as_slice(), ())?;
        }
    }
    Ok(())
}

/// One page of a scan and the number of entries that matched in all.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: u64,
}

/// Scans newest first, keeping entries for which `keep` holds; returns `limit` of them after
/// skipping `offset`, and the total number that matched. With `key`, only that key's entries.
pub fn scan<T: Entry>(
    tx: &ReadTransaction,
    key: Option<&str>,
    mut keep: impl FnMut(&T) -> bool,
    offset: u64,
    limit: u64,
) -> Result<Page<T>> {
    let j = T::JOURNAL;
    let entries = tx.open_table(j.entries)?;
    let mut items = Vec::new();
    let mut total = 0u64;
    let mut visit = |bytes: &[u8]| -> Result<()> {
        let item: T = serde_json::from_slice(bytes)?;
        if keep(&item) {
            if total >= offset && (items.len() as u64) < limit {
                items.push(item);
            }
            total += 1;
        }
        Ok(())
    };
    match key {
        None => {
            for entry in entries.range::<u64>(..)?.rev() {
                let (_, v) = entry?;
                visit(v.value())?;
            }
        }
        Some(key) => {
            let by_key = tx.open_table(j.by_key)?;
            let lo = key_entry(key, 0);
            let hi = key_entry(key, u64::MAX);
            for entry in by_key.range(lo.as_slice()..=hi.as_slice())?.rev() {
                let (k, _) = entry?;
                let raw = k.value();
                let seq = u64::from_be_bytes(raw[raw.len() - 8..].try_into().expect("8 bytes"));
                if let Some(v) = entries.get(seq)? {
                    visit(v.value())?;
                }
            }
        }
    }
    Ok(Page { items, total })
}

/// Drops the oldest entries until at most `max_rows` remain and none is older than `min_time_ms`.
/// Returns how many were dropped.
pub fn prune<T: Entry>(tx: &WriteTransaction, max_rows: u64, min_time_ms: u64) -> Result<u64> {
    let j = T::JOURNAL;
    let mut entries = tx.open_table(j.entries)?;
    let mut by_key = tx.open_table(j.by_key)?;
    let mut dropped = 0;
    loop {
        let len = entries.len()?;
        let Some((seq, item)) = entries
            .first()?
            .map(|(k, v)| (k.value(), serde_json::from_slice::<T>(v.value())))
        else {
            break;
        };
        let too_many = len > max_rows;
        let decoded = item.ok();
        let too_old = decoded
            .as_ref()
            .map(|i| i.time_ms() < min_time_ms)
            .unwrap_or(true);
        if !too_many && !too_old {
            break;
        }
        entries.remove(seq)?;
        if let Some(key) = decoded.as_ref().and_then(|i| i.key()) {
            by_key.remove(key_entry(key, seq).as_slice())?;
        }
        dropped += 1;
    }
    Ok(dropped)
}

/// Number of entries.
pub fn len<T: Entry>(tx: &ReadTransaction) -> Result<u64> {
    Ok(tx.open_table(T::JOURNAL.entries)?.len()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Store;
    use serde::Deserialize;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Line {
        t: u64,
        run: Option<String>,
        msg: String,
    }

    impl Entry for Line {
        const JOURNAL: &'static Journal = &LOGS;
        fn time_ms(&self) -> u64 {
            self.t
        }
        fn key(&self) -> Option<&str> {
            self.run.as_deref()
        }
    }

    fn line(t: u64, run: Option<&str>) -> Line {
        Line {
            t,
            run: run.map(String::from),
            msg: format!("m{t}"),
        }
    }

    #[test]
    fn scans_newest_first_with_paging_keys_and_filters() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let items: Vec<Line> = (0..10)
            .map(|t| line(t, (t % 2 == 0).then_some("even")))
            .collect();
        store.write_blocking(|tx| append(tx, &items)).unwrap();

        let page = store
            .read_blocking(|tx| scan::<Line>(tx, None, |_| true, 2, 3))
            .unwrap();
        assert_eq!(page.total, 10);
        assert_eq!(
            page.items.iter().map(|l| l.t).collect::<Vec<_>>(),
            [7, 6, 5]
        );

        let even = store
            .read_blocking(|tx| scan::<Line>(tx, Some("even"), |_| true, 0, 100))
            .unwrap();
        assert_eq!(
            even.items.iter().map(|l| l.t).collect::<Vec<_>>(),
            [8, 6, 4, 2, 0]
        );

        let big = store
            .read_blocking(|tx| scan::<Line>(tx, None, |l| l.t >= 5, 0, 2))
            .unwrap();
        assert_eq!((big.total, big.items.len()), (5, 2));
    }

    #[test]
    fn retention_drops_the_oldest_rows_by_count_and_age() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let items: Vec<Line> = (0..10).map(|t| line(t, Some("r"))).collect();
        store.write_blocking(|tx| append(tx, &items)).unwrap();

        let dropped = store.write_blocking(|tx| prune::<Line>(tx, 6, 0)).unwrap();
        assert_eq!(dropped, 4);
        let dropped = store
            .write_blocking(|tx| prune::<Line>(tx, 100, 7))
            .unwrap();
        assert_eq!(dropped, 3);
        let left = store
            .read_blocking(|tx| scan::<Line>(tx, Some("r"), |_| true, 0, 100))
            .unwrap();
        assert_eq!(
            left.items.iter().map(|l| l.t).collect::<Vec<_>>(),
            [9, 8, 7]
        );
        assert_eq!(store.read_blocking(len::<Line>).unwrap(), 3);

        // Numbering continues after pruning, so new rows sort after the survivors.
        store
            .write_blocking(|tx| append(tx, &[line(42, None)]))
            .unwrap();
        let newest = store
            .read_blocking(|tx| scan::<Line>(tx, None, |_| true, 0, 1))
            .unwrap();
        assert_eq!(newest.items[0].t, 42);
    }
}
