//! Maps field paths (`spec.services[0].cluster`) to source lines, so errors found after
//! deserialisation can still name file:line.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// Positions of every node of every document in one YAML stream.
#[derive(Debug, Default)]
pub struct Locator {
    /// (document index, path) -> 1-based line.
    lines: HashMap<(usize, String), usize>,
}

impl Locator {
    /// Indexes `text`. Unparseable YAML yields an empty locator (serde reports that error).
    pub fn new(text: &str) -> Self {
        let mut rec = Recorder::default();
        let mut parser = Parser::new_from_str(text);
        let _ = parser.load(&mut rec, true);
        Self { lines: rec.lines }
    }

    /// The line of `path` in document `doc`, or of its nearest located ancestor.
    pub fn line(&self, doc: usize, path: &str) -> Option<usize> {
        let mut p = path.to_owned();
        loop {
            if let Some(l) = self.lines.get(&(doc, p.clone())) {
                return Some(*l);
            }
            if p.is_empty() {
                return None;
            }
            p = parent(&p);
        }
    }
}

fn parent(path: &str) -> String {
    let cut = path.rfind(['.', '[']).unwrap_or(0);
    path[..cut].to_owned()
}

#[derive(Debug)]
enum Frame {
    Map {
        path: String,
        expecting_key: bool,
        key: String,
    },
    Seq {
        path: String,
        index: usize,
    },
}

#[derive(Default)]
struct Recorder {
    doc: Option<usize>,
    stack: Vec<Frame>,
    lines: HashMap<(usize, String), usize>,
}

impl Recorder {
    fn record(&mut self, path: String, mark: Marker) {
        let doc = self.doc.unwrap_or(0);
        self.lines.entry((doc, path)).or_insert(mark.line());
    }

    fn child_path(&self) -> String {
        match self.stack.last() {
            None => String::new(),
            Some(Frame::Map { path, key, .. }) if path.is_empty() => key.clone(),
            Some(Frame::Map { path, key, .. }) => format!("{path}.{key}"),
            Some(Frame::Seq { path, index }) => format!("{path}[{index}]"),
        }
    }

    fn finish_value(&mut self) {
        match self.stack.last_mut() {
            Some(Frame::Map { expecting_key, .. }) => *expecting_key = true,
            Some(Frame::Seq { index, .. }) => *index += 1,
            None => {}
        }
    }
}

impl MarkedEventReceiver for Recorder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::DocumentStart => {
                self.doc = Some(self.doc.map_or(0, |d| d + 1));
                self.stack.clear();
            }
            Event::Scalar(ref value, ..) => {
                if let Some(Frame::Map {
                    expecting_key: e @ true,
                    key,
                    ..
                }) = self.stack.last_mut()
                {
                    *e = false;
                    *key = value.clone();
                    let p = self.child_path();
                    self.record(p, mark);
                    return;
                }
                let p = self.child_path();
                self.record(p, mark);
                self.finish_value();
            }
            Event::Alias(_) => {
                let p = self.child_path();
                self.record(p, mark);
                self.finish_value();
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let path = self.child_path();
                self.record(path.clone(), mark);
                self.stack.push(if matches!(ev, Event::MappingStart(..)) {
                    Frame::Map {
                        path,
                        expecting_key: true,
                        key: String::new(),
                    }
                } else {
                    Frame::Seq { path, index: 0 }
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
                self.finish_value();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_paths_across_documents() {
        let text = "a: 1\nb:\n  c: [x, y]\n---\nspec:\n  items:\n    - name: one\n    - name: two\n      port: 80\n";
        let loc = Locator::new(text);
        assert_eq!(loc.line(0, "a"), Some(1));
        assert_eq!(loc.line(0, "b.c[1]"), Some(3));
        assert_eq!(loc.line(1, "spec.items[1].port"), Some(9));
        assert_eq!(loc.line(1, "spec.items[1].missing"), Some(8));
    }
}
