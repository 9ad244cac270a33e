//! The run history: what was run on which data and how well it did, kept
//! in a local SQLite database (WAL journal, one transaction per record, so
//! concurrent runs each add their rows and none is lost), with a versioned
//! schema. `kernel-host run` and `recommend` add to it unless told not to
//! (`--no-history`, or `KERNEL_HOST_HISTORY=off`); `recommend` reads it: on
//! data sets similar to the one at hand, the model that scored best there
//! is ranked (and cross-validated) first, and the recommendation says so.
//!
//! A data set is known by its [`Fingerprint`]: the task, the feature
//! columns with their types, the target and the row count. Similarity
//! weighs shared column names, the mix of column types and the order of
//! magnitude of the rows; data sets of different tasks are never similar.

use crate::data::ColumnType;
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OptionalExtension as _, params};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The schema this build reads and writes.
pub const SCHEMA_VERSION: i64 = 1;

/// Data sets at least this similar count as "similar".
pub const SIMILAR: f64 = 0.6;

/// What a data set looks like, for finding similar ones.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// `classification`, `regression` or `clustering`.
    pub task: String,
    pub rows: u64,
    pub target: Option<String>,
    /// Feature columns and their types.
    pub columns: Vec<(String, ColumnType)>,
}

impl Fingerprint {
    /// From a profile, over the given features.
    pub fn of_profile(profile: &crate::data::profile::Profile, features: &[String]) -> Fingerprint {
        Fingerprint {
            task: task_family(profile.task.is_classification(), profile.task),
            rows: profile.rows,
            target: profile.target.as_ref().map(|t| t.name.clone()),
            columns: profile
                .columns
                .iter()
                .filter(|c| features.contains(&c.name))
                .map(|c| (c.name.clone(), c.ty))
                .collect(),
        }
    }

    /// In [0, 1]: 0 for different tasks; otherwise half shared column
    /// names (Jaccard), three tenths the same mix of types, one fifth
    /// rows of the same order of magnitude.
    pub fn similarity(&self, other: &Fingerprint) -> f64 {
        if self.task != other.task {
            return 0.0;
        }
        let a: BTreeSet<&str> = self.columns.iter().map(|c| c.0.as_str()).collect();
        let b: BTreeSet<&str> = other.columns.iter().map(|c| c.0.as_str()).collect();
        let union = a.union(&b).count().max(1) as f64;
        let names = a.intersection(&b).count() as f64 / union;
        let mix = |f: &Fingerprint| {
            let mut counts = [0f64; 4];
            for (_, t) in &f.columns {
                counts[match t {
                    ColumnType::F64 => 0,
                    ColumnType::S64 => 1,
                    ColumnType::Bool => 2,
                    ColumnType::String => 3,
                }] += 1.0;
            }
            let total = counts.iter().sum::<f64>().max(1.0);
            counts.map(|c| c / total)
        };
        let (x, y) = (mix(self), mix(other));
        let types = 1.0 - x.iter().zip(&y).map(|(p, q)| (p - q).abs()).sum::<f64>() / 2.0;
        let ratio = (self.rows.max(1) as f64 / other.rows.max(1) as f64)
            .log10()
            .abs();
        let rows = 1.0 - (ratio / 3.0).min(1.0);
        0.5 * names + 0.3 * types + 0.2 * rows
    }
}

fn task_family(classification: bool, task: crate::data::profile::Task) -> String {
    if classification {
        "classification".into()
    } else {
        task.to_string()
    }
}

/// The task family a metric scores.
pub fn task_of_metric(metric: &str) -> &'static str {
    match metric {
        "r2" | "rmse" | "mae" => "regression",
        "silhouette" | "inertia" => "clustering",
        _ => "classification",
    }
}

/// One evaluation, as recorded.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Entry {
    /// `run`, `compare`, `tune` or `recommend`.
    pub command: String,
    pub data: PathBuf,
    pub fingerprint: Fingerprint,
    /// Kernel names, in step order; the last is the model.
    pub pipeline: Vec<String>,
    pub metric: String,
    pub score: f64,
    /// What the score was measured on: `86 test rows`, `5-fold CV on 258 rows`.
    pub scored_on: String,
    pub fit_seconds: f64,
    pub fuel: u64,
}

impl Entry {
    pub fn model(&self) -> &str {
        self.pipeline.last().map_or("", String::as_str)
    }
}

/// An entry in the store: its id and when it was added.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Record {
    pub id: i64,
    /// RFC 3339, UTC.
    pub at: String,
    #[serde(flatten)]
    pub entry: Entry,
}

/// What the history says about some candidate models on data like this.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Evidence {
    /// Similar data sets that scored at least two of the candidates.
    pub datasets: usize,
    /// Per model, the similar data sets on which it scored best.
    pub wins: BTreeMap<String, usize>,
    /// One sentence, e.g. "on 3 similar data sets, mlp-classifier beat
    /// logistic-regression".
    pub summary: Option<String>,
}

impl Evidence {
    /// The model the history favours, if any won a data set.
    pub fn favourite(&self) -> Option<&str> {
        self.wins
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
            .map(|(m, _)| m.as_str())
    }
}

/// The history database.
pub struct History {
    conn: Connection,
    path: PathBuf,
}

/// Where the history lives: `$KERNEL_HOST_HISTORY` (a file, or `off`),
/// else `$XDG_DATA_HOME/kernel-host/history.sqlite`, else
/// `~/.local/share/kernel-host/history.sqlite`. `None`: switched off.
pub fn default_path() -> Option<PathBuf> {
    match std::env::var_os("KERNEL_HOST_HISTORY") {
        Some(v) if v == "off" || v == "0" || v == "false" => return None,
        Some(v) if !v.is_empty() => return Some(PathBuf::from(v)),
        _ => {}
    }
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("kernel-host/history.sqlite"));
    }
    std::env::var_os("HOME")
        .map(|home| PathBuf::from(home).join(".local/share/kernel-host/history.sqlite"))
}

type Result<T> = std::result::Result<T, anyhow::Error>;

impl History {
    /// Opens (creating it and its directory when missing) the history at
    /// `path`, upgrading an older schema; refuses a newer one.
    pub fn open(path: &Path) -> Result<History> {
        use anyhow::Context as _;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let conn = Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        // WAL: readers never block the writer, writers queue on the lock.
        let _: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        // The write-ahead log stays between runs instead of being
        // checkpointed into the database, synced and deleted at every
        // close (a run records one row): SQLite checkpoints it once it
        // reaches 1000 pages, and syncs then. A record is not synced on its
        // own (`synchronous=NORMAL`): after a power cut the history may
        // lack the last runs, never a consistent database.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let mut history = History {
            conn,
            path: path.to_path_buf(),
        };
        history.migrate()?;
        Ok(history)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn migrate(&mut self) -> Result<()> {
        // The usual case, a current schema, needs no write lock.
        if self.schema_version()? == Some(SCHEMA_VERSION) {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
        )?;
        let version: Option<i64> = tx
            .query_row(
                "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        match version {
            None => {
                tx.execute_batch(
                    "CREATE TABLE runs (
                        id INTEGER PRIMARY KEY,
                        at TEXT NOT NULL,
                        command TEXT NOT NULL,
                        data TEXT NOT NULL,
                        fingerprint TEXT NOT NULL,
                        task TEXT NOT NULL,
                        pipeline TEXT NOT NULL,
                        model TEXT NOT NULL,
                        metric TEXT NOT NULL,
                        score REAL NOT NULL,
                        scored_on TEXT NOT NULL,
                        fit_seconds REAL NOT NULL,
                        fuel INTEGER NOT NULL
                    );
                    CREATE INDEX runs_task ON runs (task);
                    INSERT INTO meta (key, value) VALUES ('schema_version', '1');",
                )?;
            }
            Some(v) if v == SCHEMA_VERSION => {}
            Some(v) => anyhow::bail!(
                "{} has history schema version {v}; this kernel-host reads version {SCHEMA_VERSION}: upgrade kernel-host, or move the file away to start a new history",
                self.path.display()
            ),
        }
        tx.commit()?;
        Ok(())
    }

    /// The schema version recorded, if the database has one.
    fn schema_version(&self) -> Result<Option<i64>> {
        let has_meta: bool = self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'meta')",
            [],
            |r| r.get(0),
        )?;
        if !has_meta {
            return Ok(None);
        }
        Ok(self
            .conn
            .query_row(
                "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Adds a record (one transaction); returns its id.
    pub fn record(&mut self, r: &Entry) -> Result<i64> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO runs (at, command, data, fingerprint, task, pipeline, model, metric, score, scored_on, fit_seconds, fuel)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
                r.command,
                r.data.display().to_string(),
                serde_json::to_string(&r.fingerprint)?,
                r.fingerprint.task,
                serde_json::to_string(&r.pipeline)?,
                r.pipeline.last().cloned().unwrap_or_default(),
                r.metric,
                r.score,
                r.scored_on,
                r.fit_seconds,
                i64::try_from(r.fuel).unwrap_or(i64::MAX),
            ],
        )?;
        let id = tx.last_insert_rowid();
        tx.commit()?;
        Ok(id)
    }

    fn rows(&self, sql: &str, args: &[&dyn rusqlite::ToSql]) -> Result<Vec<Record>> {
        let mut stmt = self.conn.prepare(sql)?;
        let rows = stmt.query_map(args, |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, f64>(7)?,
                r.get::<_, String>(8)?,
                r.get::<_, f64>(9)?,
                r.get::<_, i64>(10)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, at, command, data, fingerprint, pipeline, metric, score, scored_on, fit, fuel) =
                row?;
            out.push(Record {
                id,
                at,
                entry: Entry {
                    command,
                    data: PathBuf::from(data),
                    fingerprint: serde_json::from_str(&fingerprint)?,
                    pipeline: serde_json::from_str(&pipeline)?,
                    metric,
                    score,
                    scored_on,
                    fit_seconds: fit,
                    fuel: u64::try_from(fuel).unwrap_or(0),
                },
            });
        }
        Ok(out)
    }

    const COLUMNS: &'static str =
        "id, at, command, data, fingerprint, pipeline, metric, score, scored_on, fit_seconds, fuel";

    /// The newest `limit` records, newest first.
    pub fn list(&self, limit: usize) -> Result<Vec<Record>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.rows(
            &format!(
                "SELECT {} FROM runs ORDER BY id DESC LIMIT ?1",
                Self::COLUMNS
            ),
            &[&limit],
        )
    }

    pub fn get(&self, id: i64) -> Result<Option<Record>> {
        Ok(self
            .rows(
                &format!("SELECT {} FROM runs WHERE id = ?1", Self::COLUMNS),
                &[&id],
            )?
            .pop())
    }

    /// Removes one record, every record about a data file, or all;
    /// returns how many went.
    pub fn forget(&mut self, which: &Forget) -> Result<usize> {
        Ok(match which {
            Forget::Id(id) => self.conn.execute("DELETE FROM runs WHERE id = ?1", [id])?,
            Forget::Data(path) => self.conn.execute(
                "DELETE FROM runs WHERE data = ?1",
                [path.display().to_string()],
            )?,
            Forget::All => self.conn.execute("DELETE FROM runs", [])?,
        })
    }

    /// What similar data sets say about `models`: per similar data set
    /// (data file and fingerprint) that scored two or more of them by the
    /// same metric, the one with the best score wins it.
    pub fn evidence(&self, here: &Fingerprint, models: &[String]) -> Result<Evidence> {
        let all = self.rows(
            &format!("SELECT {} FROM runs WHERE task = ?1", Self::COLUMNS),
            &[&here.task],
        )?;
        // (data, fingerprint, metric) -> model -> best score.
        let mut sets: BTreeMap<(String, String, String), BTreeMap<String, f64>> = BTreeMap::new();
        for Record { entry: r, .. } in all {
            if !models.iter().any(|m| m == r.model())
                || here.similarity(&r.fingerprint) < SIMILAR
                || !r.score.is_finite()
            {
                continue;
            }
            let higher = crate::select::metrics::higher_is_better(&r.metric);
            let key = (
                r.data.display().to_string(),
                serde_json::to_string(&r.fingerprint)?,
                r.metric.clone(),
            );
            let best = sets.entry(key).or_default().entry(r.model().to_string());
            let score = if higher { r.score } else { -r.score };
            best.and_modify(|s| *s = s.max(score)).or_insert(score);
        }
        let mut evidence = Evidence::default();
        let mut beaten: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for scores in sets.values().filter(|s| s.len() >= 2) {
            let Some((winner, best)) = scores
                .iter()
                .max_by(|a, b| a.1.total_cmp(b.1).then_with(|| b.0.cmp(a.0)))
            else {
                continue;
            };
            evidence.datasets += 1;
            *evidence.wins.entry(winner.clone()).or_default() += 1;
            for (loser, score) in scores {
                if loser != winner && score < best {
                    beaten
                        .entry(winner.clone())
                        .or_default()
                        .insert(loser.clone());
                }
            }
        }
        if let Some(favourite) = evidence.favourite() {
            let wins = evidence.wins[favourite];
            let losers: Vec<&str> = beaten
                .get(favourite)
                .map(|l| l.iter().map(String::as_str).collect())
                .unwrap_or_default();
            evidence.summary = Some(format!(
                "on {wins} of {} similar data set{} in the history, {favourite} scored best{}",
                evidence.datasets,
                if evidence.datasets == 1 { "" } else { "s" },
                if losers.is_empty() {
                    String::new()
                } else {
                    format!(" (beating {})", losers.join(", "))
                }
            ));
        }
        Ok(evidence)
    }
}

/// What `forget` removes.
#[derive(Clone, Debug)]
pub enum Forget {
    Id(i64),
    Data(PathBuf),
    All,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(task: &str, rows: u64, cols: &[(&str, ColumnType)]) -> Fingerprint {
        Fingerprint {
            task: task.into(),
            rows,
            target: Some("y".into()),
            columns: cols.iter().map(|(n, t)| (n.to_string(), *t)).collect(),
        }
    }

    #[test]
    fn similarity_weighs_names_types_and_size_and_never_crosses_tasks() {
        use ColumnType::*;
        let a = fp(
            "classification",
            1000,
            &[("x1", F64), ("x2", F64), ("c", String)],
        );
        assert!((a.similarity(&a) - 1.0).abs() < 1e-12);
        let renamed = fp(
            "classification",
            1000,
            &[("u", F64), ("v", F64), ("w", String)],
        );
        assert!((a.similarity(&renamed) - 0.5).abs() < 1e-12);
        let bigger = fp(
            "classification",
            1_000_000,
            &a.columns
                .iter()
                .map(|(n, t)| (n.as_str(), *t))
                .collect::<Vec<_>>(),
        );
        assert!((a.similarity(&bigger) - 0.8).abs() < 1e-12);
        let regression = Fingerprint {
            task: "regression".into(),
            ..a.clone()
        };
        assert_eq!(a.similarity(&regression), 0.0);
    }

    #[test]
    fn records_round_trip_and_evidence_names_the_winner() {
        let dir = std::env::temp_dir().join(format!("kh-history-{}", std::process::id()));
        let path = dir.join("h.sqlite");
        let _ = std::fs::remove_file(&path);
        let mut h = History::open(&path).unwrap();
        let here = fp("classification", 500, &[("x1", ColumnType::F64)]);
        let add = |h: &mut History, data: &str, model: &str, score: f64| {
            h.record(&Entry {
                command: "run".into(),
                data: PathBuf::from(data),
                fingerprint: here.clone(),
                pipeline: vec!["scaler".into(), model.into()],
                metric: "accuracy".into(),
                score,
                scored_on: "test rows".into(),
                fit_seconds: 0.1,
                fuel: 10,
            })
            .unwrap()
        };
        add(&mut h, "a.csv", "lr", 0.8);
        add(&mut h, "a.csv", "mlp", 0.9);
        add(&mut h, "b.csv", "lr", 0.7);
        let last = add(&mut h, "b.csv", "mlp", 0.95);
        let models = vec!["lr".to_string(), "mlp".to_string()];
        let e = h.evidence(&here, &models).unwrap();
        assert_eq!((e.datasets, e.favourite()), (2, Some("mlp")));
        assert_eq!(
            e.summary.as_deref(),
            Some("on 2 of 2 similar data sets in the history, mlp scored best (beating lr)")
        );
        assert_eq!(h.get(last).unwrap().unwrap().entry.model(), "mlp");
        assert_eq!(h.list(10).unwrap().len(), 4);
        assert_eq!(h.forget(&Forget::Data("b.csv".into())).unwrap(), 2);
        assert_eq!(h.list(10).unwrap().len(), 2);
        // Closing leaves the write-ahead log, not checkpointed; the next
        // process reads the records from it.
        drop(h);
        let wal = dir.join("h.sqlite-wal");
        assert!(wal.metadata().unwrap().len() > 0);
        let mut h = History::open(&path).unwrap();
        assert_eq!(h.list(10).unwrap().len(), 2);
        add(&mut h, "c.csv", "lr", 0.5);
        drop(h);
        assert_eq!(History::open(&path).unwrap().list(10).unwrap().len(), 3);
        let h = History::open(&path).unwrap();
        // A newer schema is refused, not misread.
        h.conn
            .execute(
                "UPDATE meta SET value = '99' WHERE key = 'schema_version'",
                [],
            )
            .unwrap();
        drop(h);
        let e = History::open(&path).err().unwrap().to_string();
        assert!(e.contains("schema version 99"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
