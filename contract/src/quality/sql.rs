//! `sql` quality rules, run by an embedded SQLite over an object's rows.
//!
//! An object with a `sql` rule (at object or property level) gets a private
//! temporary SQLite database: one table named after the object (`physicalName`,
//! else `name`; a view carries the other name), one column per property (named
//! as in the files), typed by logical type (INTEGER, REAL, TEXT). The rows are
//! inserted as the files are read, in batches of [`BATCH`]. After the last file
//! each query runs with `{object}` / `{table}` and `{property}` / `{column}`
//! (also `${...}`) replaced by the quoted names; its first column of its first row
//! is the measurement the bounds compare.
//!
//! The database is SQLite's temporary on-disk kind (the page cache spills to a
//! temp file, so memory stays bounded). Queries may only read: the authorizer
//! allows SELECT, reading columns, functions and recursive CTEs and nothing else
//! (no ATTACH, PRAGMA or writes), and a query is interrupted after
//! [`QUERY_SECONDS`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::types::ValueRef;
use rusqlite::Connection;

use mesh_protocol::manifest::LogicalType;

use super::plan::ObjectPlan;
// Longer queries were refused when the rule was read.
use super::rules::MAX_QUERY_BYTES;

/// Rows inserted per statement.
pub(crate) const BATCH: usize = 200;
/// The longest a query may run.
pub const QUERY_SECONDS: u64 = 60;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// An object's rows in SQLite.
pub(crate) struct SqlTable {
    conn: Connection,
    table: String,
    columns: usize,
    pending: Vec<Option<String>>,
    /// Why the table could not be built or loaded, if it could not.
    pub(crate) broken: Option<String>,
    /// When the running query must stop (unix ms; 0: none running).
    deadline: Arc<AtomicU64>,
    loaded: bool,
    /// How long a query may run, in ms ([`QUERY_SECONDS`]).
    limit_ms: u64,
}

impl std::fmt::Debug for SqlTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlTable")
            .field("table", &self.table)
            .finish()
    }
}

fn sql_type(t: LogicalType) -> &'static str {
    match t {
        LogicalType::Integer => "INTEGER",
        LogicalType::Number => "REAL",
        _ => "TEXT",
    }
}

impl SqlTable {
    pub(crate) fn new(o: &ObjectPlan) -> Result<Self, String> {
        let fail = |e: rusqlite::Error| format!("the SQL engine could not start: {e}");
        // "" opens a private temporary database on disk.
        let mut conn = Connection::open("").map_err(fail)?;
        conn.set_limit(rusqlite::limits::Limit::SQLITE_LIMIT_ATTACHED, 0)
            .map_err(fail)?;
        conn.set_limit(
            rusqlite::limits::Limit::SQLITE_LIMIT_SQL_LENGTH,
            (MAX_QUERY_BYTES * 4) as i32,
        )
        .map_err(fail)?;
        let name = o.physical_name.clone().unwrap_or_else(|| o.name.clone());
        let table = quoted(&name);
        let cols: Vec<String> = o
            .columns
            .iter()
            .map(|c| format!("{} {}", quoted(&c.column), sql_type(c.logical_type)))
            .collect();
        let mut ddl = format!("CREATE TABLE {table} ({});", cols.join(", "));
        if !o.name.is_empty() && o.name != name {
            ddl.push_str(&format!(
                "CREATE VIEW {} AS SELECT * FROM {table};",
                quoted(&o.name)
            ));
        }
        ddl.push_str("BEGIN;");
        conn.execute_batch(&ddl).map_err(fail)?;
        let deadline = Arc::new(AtomicU64::new(0));
        let d = deadline.clone();
        conn.progress_handler(
            10_000,
            Some(move || {
                let at = d.load(Ordering::Relaxed);
                at != 0 && now_ms() > at
            }),
        )
        .map_err(fail)?;
        Ok(SqlTable {
            conn,
            table,
            columns: o.columns.len(),
            pending: Vec::new(),
            broken: None,
            deadline,
            loaded: false,
            limit_ms: QUERY_SECONDS * 1000,
        })
    }

    /// Adds a row (values as text, `None` for null), in the plan's column order.
    pub(crate) fn row(&mut self, values: &[Option<String>]) {
        if self.broken.is_some() {
            return;
        }
        self.pending
            .extend(values.iter().take(self.columns).cloned());
        self.pending
            .extend((values.len()..self.columns).map(|_| None));
        if self.pending.len() >= BATCH * self.columns {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.pending.is_empty() || self.columns == 0 {
            self.pending.clear();
            return;
        }
        let rows = self.pending.len() / self.columns;
        let one = format!("({})", vec!["?"; self.columns].join(","));
        let sql = format!(
            "INSERT INTO {} VALUES {}",
            self.table,
            vec![one; rows].join(",")
        );
        let result = self
            .conn
            .prepare(&sql)
            .and_then(|mut st| st.execute(rusqlite::params_from_iter(self.pending.iter())));
        if let Err(e) = result {
            self.broken = Some(format!("loading the rows into the SQL engine failed: {e}"));
        }
        self.pending.clear();
    }

    /// The first column of the first row `query` returns, as a number.
    pub(crate) fn query(
        &mut self,
        query: &str,
        object: &ObjectPlan,
        property: Option<&str>,
    ) -> Result<f64, String> {
        if !self.loaded {
            self.flush();
            self.loaded = true;
            if let Err(e) = self.conn.execute_batch("COMMIT;") {
                self.broken = Some(format!("loading the rows into the SQL engine failed: {e}"));
            }
            // From here on, queries only read.
            let auth = |ctx: AuthContext<'_>| match ctx.action {
                AuthAction::Select
                | AuthAction::Read { .. }
                | AuthAction::Function { .. }
                | AuthAction::Recursive => Authorization::Allow,
                _ => Authorization::Deny,
            };
            if let Err(e) = self.conn.authorizer(Some(auth)) {
                self.broken = Some(format!("the SQL engine could not be locked down: {e}"));
            }
        }
        if let Some(why) = &self.broken {
            return Err(why.clone());
        }
        let column = property
            .and_then(|p| object.columns.iter().find(|c| c.name == p))
            .map(|c| quoted(&c.column));
        let mut q = query.to_owned();
        for key in ["object", "table"] {
            q = q
                .replace(&format!("${{{key}}}"), &self.table)
                .replace(&format!("{{{key}}}"), &self.table);
        }
        if let Some(c) = &column {
            for key in ["property", "column"] {
                q = q
                    .replace(&format!("${{{key}}}"), c)
                    .replace(&format!("{{{key}}}"), c);
            }
        }
        self.deadline
            .store(now_ms() + self.limit_ms, Ordering::Relaxed);
        let result = self.conn.query_row(&q, [], |row| {
            Ok(match row.get_ref(0)? {
                ValueRef::Integer(i) => Ok(i as f64),
                ValueRef::Real(r) => Ok(r),
                ValueRef::Text(t) => String::from_utf8_lossy(t)
                    .trim()
                    .parse::<f64>()
                    .map_err(|_| "the query returned text, not a number".to_owned()),
                ValueRef::Null => Err("the query returned NULL".to_owned()),
                ValueRef::Blob(_) => Err("the query returned a blob, not a number".to_owned()),
            })
        });
        self.deadline.store(0, Ordering::Relaxed);
        match result {
            Ok(v) => v,
            Err(rusqlite::Error::QueryReturnedNoRows) => Err("the query returned no row".into()),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::OperationInterrupted =>
            {
                Err(format!(
                    "the query ran longer than {} s and was stopped",
                    self.limit_ms / 1000
                ))
            }
            Err(e) => Err(format!("the query failed in SQLite: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quality::Plan;
    use mesh_protocol::manifest::NullValues;

    fn table() -> (Plan, SqlTable) {
        let doc = crate::odcs::document(
            "schema:\n  - name: t\n    physicalName: t_raw\n    properties:\n      - {name: n, logicalType: integer}\n      - {name: s, physicalName: s_col}\n",
        )
        .expect("doc");
        let plan = Plan::from_contract(&doc, &NullValues::default());
        let mut t = SqlTable::new(&plan.objects[0]).expect("table");
        for i in 0..1000 {
            t.row(&[Some(i.to_string()), (i % 2 == 0).then(|| "x".to_owned())]);
        }
        (plan, t)
    }

    #[test]
    fn queries_see_every_row_by_either_name() {
        let (plan, mut t) = table();
        let o = &plan.objects[0];
        assert_eq!(
            t.query("SELECT SUM(n) FROM {object}", o, None),
            Ok(499_500.0)
        );
        assert_eq!(
            t.query(
                "SELECT COUNT(*) FROM t WHERE {column} IS NULL",
                o,
                Some("s")
            ),
            Ok(500.0)
        );
        assert_eq!(
            t.query("SELECT COUNT(*) FROM ${table} WHERE s_col = 'x'", o, None),
            Ok(500.0)
        );
        assert_eq!(t.query("SELECT MAX(n) > 10 FROM t_raw", o, None), Ok(1.0));
    }

    #[test]
    fn queries_only_read_and_are_stopped_in_time() {
        let (plan, mut t) = table();
        let o = &plan.objects[0];
        for hostile in [
            "ATTACH DATABASE '/etc/passwd' AS p",
            "DELETE FROM t",
            "PRAGMA writable_schema = 1",
            "CREATE TABLE x (a)",
            "SELECT load_extension('/tmp/x')",
        ] {
            let err = t.query(hostile, o, None).expect_err(hostile);
            assert!(err.contains("SQLite"), "{hostile}: {err}");
        }
        assert_eq!(
            t.query("SELECT COUNT(*) FROM t", o, None),
            Ok(1000.0),
            "nothing changed"
        );
        for (q, why) in [
            ("SELECT NULL", "NULL"),
            ("SELECT 'many'", "text"),
            ("SELECT n FROM t WHERE n < 0", "no row"),
            ("SELEC 1", "failed"),
        ] {
            let err = t.query(q, o, None).expect_err(q);
            assert!(err.contains(why), "{q}: {err}");
        }
        t.limit_ms = 300;
        let err = t
            .query("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT MAX(x) FROM c", o, None)
            .expect_err("endless");
        assert!(err.contains("was stopped"), "{err}");
    }
}
