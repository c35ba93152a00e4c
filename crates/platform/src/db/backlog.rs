//! The outbox backlog estimate order-api sheds load by: exact at each count of the relay, and
//! kept up between counts by the rows noted as they are enqueued.
//!
//! A count is a snapshot of the table; rows committed after it began are missing from it. Each
//! count therefore starts from a [`Mark`] taken before its query, and the rows noted since that
//! mark are added to it when it is stored: a row is never lost from the estimate (which would
//! let an order past the limit), at worst counted twice until the next count.

use std::sync::Mutex;

/// Rows waiting in the outbox, as far as this process knows.
#[derive(Debug, Default)]
pub(crate) struct Backlog {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The estimate.
    rows: i64,
    /// Every row ever noted: the difference between two readings is what was noted between.
    noted: i64,
}

/// Where the notes stood when a count began.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mark(i64);

impl Backlog {
    /// The estimate.
    pub(crate) fn rows(&self) -> i64 {
        self.state.lock().map_or(0, |state| state.rows)
    }

    /// Counts `rows` just committed to the outbox.
    pub(crate) fn note(&self, rows: i64) {
        if let Ok(mut state) = self.state.lock() {
            state.rows += rows;
            state.noted += rows;
        }
    }

    /// Taken before a count's query.
    pub(crate) fn mark(&self) -> Mark {
        Mark(self.state.lock().map_or(0, |state| state.noted))
    }

    /// Stores a count begun after `mark`, plus what was noted since.
    pub(crate) fn counted(&self, rows: i64, mark: Mark) {
        if let Ok(mut state) = self.state.lock() {
            state.rows = rows + (state.noted - mark.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_noted_while_a_count_runs_is_kept() {
        let backlog = Backlog::default();
        backlog.note(2);
        let mark = backlog.mark();
        // The count's snapshot misses the row committed while it ran.
        backlog.note(1);
        backlog.counted(0, mark);
        assert_eq!(backlog.rows(), 1);
    }

    #[test]
    fn a_count_replaces_the_estimate_of_the_rows_it_saw() {
        let backlog = Backlog::default();
        backlog.note(5);
        let mark = backlog.mark();
        backlog.counted(2, mark);
        assert_eq!(backlog.rows(), 2);
        backlog.note(1);
        assert_eq!(backlog.rows(), 3);
    }
}
