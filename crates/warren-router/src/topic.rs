//! The topic exchange's trie.
//!
//! Patterns are split on `.` into words; each trie node has a map of literal words plus
//! one slot for `*` (exactly one word) and one for `#` (zero or more words), as in
//! nats-server's sublist. Matching walks the key's words once, branching only where a
//! node has wildcard slots; `(node, position)` pairs reached through `#` are remembered so
//! patterns like `#.#.#` cannot make matching exponential.

use foldhash::{HashMap, HashMapExt, HashSet};

use smallvec::SmallVec;

/// Split a topic routing key or pattern into words, as RabbitMQ does: the empty key has
/// no words at all, and every `.` separates two (possibly empty) words.
pub fn split_topic_key(key: &[u8]) -> impl Iterator<Item = &[u8]> {
    let words = if key.is_empty() {
        None
    } else {
        Some(key.split(|b| *b == b'.'))
    };
    words.into_iter().flatten()
}

type NodeId = u32;

#[derive(Debug)]
struct Node<D> {
    words: HashMap<Box<[u8]>, NodeId>,
    star: Option<NodeId>,
    hash: Option<NodeId>,
    /// Destinations whose pattern ends here, with how many bindings lead to each.
    dests: SmallVec<[(D, u32); 1]>,
}

impl<D> Node<D> {
    fn new() -> Self {
        Self {
            words: HashMap::new(),
            star: None,
            hash: None,
            dests: SmallVec::new(),
        }
    }

    fn is_empty(&self) -> bool {
        self.words.is_empty() && self.star.is_none() && self.hash.is_none() && self.dests.is_empty()
    }
}

#[derive(Debug, Clone, Copy)]
enum Slot<'p> {
    Word(&'p [u8]),
    Star,
    Hash,
}

fn slot_of(word: &[u8]) -> Slot<'_> {
    match word {
        b"*" => Slot::Star,
        b"#" => Slot::Hash,
        w => Slot::Word(w),
    }
}

/// A trie of topic patterns leading to destinations `D`.
#[derive(Debug)]
pub struct TopicTrie<D> {
    nodes: Vec<Node<D>>,
    free: Vec<NodeId>,
}

impl<D> Default for TopicTrie<D> {
    fn default() -> Self {
        Self {
            nodes: vec![Node::new()],
            free: Vec::new(),
        }
    }
}

const ROOT: NodeId = 0;

impl<D: Clone + Eq> TopicTrie<D> {
    /// Add one binding of `dest` with `pattern`.
    pub fn insert(&mut self, pattern: &[u8], dest: D) {
        let mut at = ROOT;
        for word in split_topic_key(pattern) {
            at = match self.child(at, slot_of(word)) {
                Some(next) => next,
                None => {
                    let next = self.alloc();
                    let node = &mut self.nodes[at as usize];
                    match slot_of(word) {
                        Slot::Word(w) => {
                            node.words.insert(w.into(), next);
                        }
                        Slot::Star => node.star = Some(next),
                        Slot::Hash => node.hash = Some(next),
                    }
                    next
                }
            };
        }
        let dests = &mut self.nodes[at as usize].dests;
        match dests.iter_mut().find(|(d, _)| *d == dest) {
            Some((_, count)) => *count += 1,
            None => dests.push((dest, 1)),
        }
    }

    /// Remove one binding of `dest` with `pattern`; false if there was none.
    pub fn remove(&mut self, pattern: &[u8], dest: &D) -> bool {
        let mut path: SmallVec<[(NodeId, Slot<'_>); 16]> = SmallVec::new();
        let mut at = ROOT;
        for word in split_topic_key(pattern) {
            let slot = slot_of(word);
            let Some(next) = self.child(at, slot) else {
                return false;
            };
            path.push((at, slot));
            at = next;
        }
        let dests = &mut self.nodes[at as usize].dests;
        let Some(pos) = dests.iter().position(|(d, _)| d == dest) else {
            return false;
        };
        dests[pos].1 -= 1;
        if dests[pos].1 == 0 {
            dests.swap_remove(pos);
        }
        // Prune nodes left with nothing, bottom up.
        while let Some((parent, slot)) = path.pop() {
            if !self.nodes[at as usize].is_empty() {
                break;
            }
            let node = &mut self.nodes[parent as usize];
            match slot {
                Slot::Word(w) => {
                    node.words.remove(w);
                }
                Slot::Star => node.star = None,
                Slot::Hash => node.hash = None,
            }
            self.free.push(at);
            at = parent;
        }
        true
    }

    /// Call `emit` for each destination whose pattern matches `key` (a destination bound
    /// by several matching patterns may be emitted more than once; callers dedupe).
    pub fn route<'a>(&'a self, key: &[u8], mut emit: impl FnMut(&'a D)) {
        let words: SmallVec<[&[u8]; 16]> = split_topic_key(key).collect();
        let n = words.len();
        let mut stack: SmallVec<[(NodeId, usize); 16]> = SmallVec::new();
        let mut seen = PairSet::default();
        stack.push((ROOT, 0));
        while let Some((id, i)) = stack.pop() {
            let node = &self.nodes[id as usize];
            if let Some(h) = node.hash {
                for j in i..=n {
                    if seen.insert((h, j)) {
                        stack.push((h, j));
                    }
                }
            }
            if i == n {
                node.dests.iter().for_each(|(d, _)| emit(d));
                continue;
            }
            if let Some(&next) = node.words.get(words[i]) {
                stack.push((next, i + 1));
            }
            if let Some(next) = node.star {
                stack.push((next, i + 1));
            }
        }
    }

    /// True when no binding is left.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.nodes[ROOT as usize].is_empty()
    }

    fn child(&self, at: NodeId, slot: Slot<'_>) -> Option<NodeId> {
        let node = &self.nodes[at as usize];
        match slot {
            Slot::Word(w) => node.words.get(w).copied(),
            Slot::Star => node.star,
            Slot::Hash => node.hash,
        }
    }

    fn alloc(&mut self) -> NodeId {
        if let Some(id) = self.free.pop() {
            self.nodes[id as usize] = Node::new();
            return id;
        }
        self.nodes.push(Node::new());
        (self.nodes.len() - 1) as NodeId
    }
}

/// `(node, position)` pairs already queued through a `#`: a few live inline, a hash set
/// takes over for pathological patterns.
#[derive(Default)]
struct PairSet {
    small: SmallVec<[(NodeId, usize); 8]>,
    large: Option<HashSet<(NodeId, usize)>>,
}

impl PairSet {
    fn insert(&mut self, pair: (NodeId, usize)) -> bool {
        if let Some(large) = &mut self.large {
            return large.insert(pair);
        }
        if self.small.contains(&pair) {
            return false;
        }
        if self.small.len() == 32 {
            let mut large: HashSet<_> = self.small.drain(..).collect();
            large.insert(pair);
            self.large = Some(large);
        } else {
            self.small.push(pair);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, key: &str) -> bool {
        let mut t = TopicTrie::default();
        t.insert(pattern.as_bytes(), 1u8);
        let mut hit = false;
        t.route(key.as_bytes(), |_| hit = true);
        hit
    }

    #[test]
    fn words_split_like_rabbitmq() {
        let split = |k: &str| {
            split_topic_key(k.as_bytes())
                .map(<[u8]>::to_vec)
                .collect::<Vec<Vec<u8>>>()
        };
        assert!(split("").is_empty());
        assert_eq!(split("a"), vec![b"a".to_vec()]);
        assert_eq!(split("a."), vec![b"a".to_vec(), Vec::new()]);
        assert_eq!(split("."), vec![Vec::<u8>::new(), Vec::new()]);
        assert_eq!(split("a..b").len(), 3);
    }

    #[test]
    fn rabbitmq_topic_rules() {
        let cases = [
            ("#", "", true),
            ("#", "a.b.c", true),
            ("*", "", false),
            ("*", "a", true),
            ("*", "a.b", false),
            ("", "", true),
            ("", "a", false),
            ("a.#", "a", true),
            ("a.#", "a.b.c", true),
            ("a.#", "b.a", false),
            ("#.b", "b", true),
            ("#.b", "a.b", true),
            ("#.b", "a.b.c", false),
            ("a.#.b", "a.b", true),
            ("a.#.b", "a.x.y.b", true),
            ("a.#.b", "a.x.y.c", false),
            ("a.*.#", "a", false),
            ("a.*.#", "a.b", true),
            ("a.*.#", "a.b.c.d", true),
            ("#.#", "", true),
            ("#.#", "a.b", true),
            ("a..b", "a..b", true),
            ("a.*.b", "a..b", true),
            ("*.", "a.", true),
            ("*.", "a", false),
            (".*", ".a", true),
            ("a.*", "a.", true),
            ("a.b", "a.b", true),
            ("a.b", "a.c", false),
            ("a#", "a#", true),
            ("a#", "ab", false),
            ("*.*", "a", false),
        ];
        for (pattern, key, expected) in cases {
            assert_eq!(matches(pattern, key), expected, "{pattern:?} vs {key:?}");
        }
    }

    #[test]
    fn remove_prunes_and_counts_bindings() {
        let mut t = TopicTrie::default();
        t.insert(b"a.*.c", "q");
        t.insert(b"a.*.c", "q");
        t.insert(b"a.#", "r");
        assert!(t.remove(b"a.*.c", &"q"));
        let mut hits = vec![];
        t.route(b"a.b.c", |d| hits.push(*d));
        hits.sort_unstable();
        assert_eq!(hits, vec!["q", "r"]);
        assert!(t.remove(b"a.*.c", &"q"));
        assert!(!t.remove(b"a.*.c", &"q"));
        assert!(t.remove(b"a.#", &"r"));
        assert!(t.is_empty());
        assert_eq!(t.nodes.len() - t.free.len(), 1);
    }

    #[test]
    fn many_hashes_stay_polynomial() {
        let pattern = vec!["#"; 120].join(".");
        let key = vec!["w"; 120].join(".");
        assert!(matches(&pattern, &key));
        let pattern = format!("{}.z", vec!["#"; 120].join("."));
        assert!(!matches(&pattern, &key));
    }
}
