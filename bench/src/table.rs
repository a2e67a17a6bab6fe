//! The one table printer of the benchmarks' reports: a label column, then
//! figure columns, printed padded (`print`) or as Markdown
//! (`print_markdown`). Cells arrive formatted; the table only lays them
//! out.

use crate::stats::Percentiles;

/// A table of formatted cells. The first column is left-aligned (a label)
/// unless [`Table::first_column_right`] says otherwise; the others are
/// right-aligned figures.
#[derive(Debug, Clone)]
pub struct Table {
    headers: Vec<String>,
    minimum_widths: Vec<usize>,
    first_column_right: bool,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<S: Into<String>>(headers: impl IntoIterator<Item = S>) -> Self {
        Self {
            headers: headers.into_iter().map(Into::into).collect(),
            minimum_widths: Vec::new(),
            first_column_right: false,
            rows: Vec::new(),
        }
    }

    /// The columns' widths at least, in characters, when printed padded (a
    /// wider cell widens its column).
    pub fn widths(mut self, widths: impl IntoIterator<Item = usize>) -> Self {
        self.minimum_widths = widths.into_iter().collect();
        self
    }

    /// Right-aligns the first column too, for a table of figures only.
    pub fn first_column_right(mut self) -> Self {
        self.first_column_right = true;
        self
    }

    /// Adds a row; it may have fewer cells than there are columns.
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) -> &mut Self {
        self.rows.push(cells.into_iter().map(Into::into).collect());
        self
    }

    /// Prints the table with every column padded to its width, one space
    /// between columns.
    pub fn print(&self) {
        for line in self.padded_lines() {
            println!("{line}");
        }
    }

    /// Prints the table as a Markdown table, as BENCHMARKS.md quotes it.
    pub fn print_markdown(&self) {
        for line in self.markdown_lines() {
            println!("{line}");
        }
    }

    fn right_aligned(&self, column: usize) -> bool {
        column > 0 || self.first_column_right
    }

    fn padded_lines(&self) -> Vec<String> {
        let columns = self
            .rows
            .iter()
            .map(Vec::len)
            .chain([self.headers.len()])
            .max()
            .unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|column| {
                std::iter::once(&self.headers)
                    .chain(&self.rows)
                    .filter_map(|cells| cells.get(column))
                    .map(|cell| cell.chars().count())
                    .chain(self.minimum_widths.get(column).copied())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        std::iter::once(&self.headers)
            .chain(&self.rows)
            .map(|cells| {
                let padded: Vec<String> = cells
                    .iter()
                    .enumerate()
                    .map(|(column, cell)| {
                        let width = widths[column];
                        if self.right_aligned(column) {
                            format!("{cell:>width$}")
                        } else {
                            format!("{cell:<width$}")
                        }
                    })
                    .collect();
                padded.join(" ").trim_end().to_string()
            })
            .collect()
    }

    fn markdown_lines(&self) -> Vec<String> {
        let line = |cells: &[String]| {
            let cells: String = cells
                .iter()
                .map(|cell| {
                    if cell.is_empty() {
                        " |".to_string()
                    } else {
                        format!(" {cell} |")
                    }
                })
                .collect();
            format!("|{cells}")
        };
        let rule: String = (0..self.headers.len())
            .map(|column| {
                if self.right_aligned(column) {
                    "---:|"
                } else {
                    "---|"
                }
            })
            .collect();
        std::iter::once(line(&self.headers))
            .chain([format!("|{rule}")])
            .chain(self.rows.iter().map(|cells| line(cells)))
            .collect()
    }
}

/// The table of a benchmark's phases: events, seconds and events/s,
/// its labels `label_width` wide.
pub fn phase_table(label_width: usize) -> Table {
    Table::new(["phase", "events", "seconds", "events/s"]).widths([label_width, 11, 10, 12])
}

/// A row of [`phase_table`].
pub fn phase_row(label: &str, events: u64, seconds: f64, per_second: f64) -> [String; 4] {
    [
        label.to_string(),
        thousands(events as f64),
        format!("{seconds:.2}"),
        thousands(per_second),
    ]
}

/// `label`, then the samples, p50, p90, p99 and max of `latency` in ms.
pub fn latency_row(label: &str, latency: &Percentiles) -> Vec<String> {
    let mut row = vec![label.to_string(), latency.samples.to_string()];
    row.extend(
        [
            latency.p50_ms,
            latency.p90_ms,
            latency.p99_ms,
            latency.max_ms,
        ]
        .map(|ms| format!("{ms:.2}")),
    );
    row
}

/// `1234567.8` as `1,234,568`.
pub fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::table::{thousands, Table};

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1000.0), "1,000");
        assert_eq!(thousands(1_234_567.8), "1,234,568");
    }

    #[test]
    fn padded_columns_are_as_wide_as_asked_or_as_their_widest_cell() {
        let mut table = Table::new(["phase", "events", "seconds"]).widths([8, 7]);
        table
            .row(["seed", "1,000", "0.50"])
            .row(["  settle", "", "12.25"]);
        table.row(["a longer label"]);
        assert_eq!(
            table.padded_lines(),
            [
                "phase           events seconds",
                "seed             1,000    0.50",
                "  settle                 12.25",
                "a longer label",
            ]
        );
    }

    #[test]
    fn markdown_aligns_figures_right_and_leaves_an_empty_header_empty() {
        let mut table = Table::new(["", "samples"]);
        table.row(["commit", "12"]);
        assert_eq!(
            table.markdown_lines(),
            ["| | samples |", "|---|---:|", "| commit | 12 |"]
        );
        let mut figures = Table::new(["clients", "tx/s"]).first_column_right();
        figures.row(["8", "100"]);
        assert_eq!(
            figures.markdown_lines(),
            ["| clients | tx/s |", "|---:|---:|", "| 8 | 100 |"]
        );
    }
}
