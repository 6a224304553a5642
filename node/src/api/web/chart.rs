//! Small charts drawn as inline SVG: usage per consumer domain as horizontal bars.

use std::collections::BTreeMap;

use maud::{html, Markup};

/// Bars drawn at most (the largest counts); the rest are summed into one line.
const MAX_BARS: usize = 20;
const LABEL_W: u64 = 150;
const BAR_W: u64 = 360;
const ROW_H: u64 = 24;

/// One bar per key, longest for the largest count, each labelled with its count.
pub(super) fn bars(counts: &BTreeMap<String, u64>) -> Markup {
    let mut items: Vec<(&String, &u64)> = counts.iter().collect();
    items.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let rest: u64 = items.iter().skip(MAX_BARS).map(|(_, n)| **n).sum();
    items.truncate(MAX_BARS);
    let max = items.first().map_or(1, |(_, n)| (**n).max(1));
    let height = ROW_H * items.len() as u64 + 4;
    let width = LABEL_W + BAR_W + 60;
    html! {
        figure.chart {
            svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="Fetches per consumer domain"
                width=(width) height=(height) viewBox={ "0 0 " (width) " " (height) } {
                @for (i, (name, n)) in items.iter().enumerate() {
                    @let y = i as u64 * ROW_H;
                    @let w = (BAR_W * **n / max).max(2);
                    text.label x=(LABEL_W - 8) y=(y + 16) text-anchor="end" { (name) }
                    rect.bar x=(LABEL_W) y=(y + 4) width=(w) height=(ROW_H - 8) rx="2" {
                        title { (name) ": " (n) " fetch(es)" }
                    }
                    text.count x=(LABEL_W + w + 6) y=(y + 16) { (n) }
                }
            }
            @if rest > 0 { figcaption { "and " (rest) " more fetch(es) by other domains" } }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_count_gets_the_longest_bar() {
        let counts = BTreeMap::from([("finance".to_string(), 8), ("logistics".to_string(), 2)]);
        let svg = bars(&counts).into_string();
        assert!(svg.contains(&format!("width=\"{BAR_W}\"")), "{svg}");
        assert!(svg.contains(&format!("width=\"{}\"", BAR_W / 4)));
        assert!(svg.find("finance") < svg.find("logistics"));
    }
}
