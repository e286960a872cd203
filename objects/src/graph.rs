//! Dominators and retained sizes of a graph with one entry node, iteratively (no recursion:
//! heaps have chains of thousands of objects).
//!
//! Cooper, Harvey and Kennedy, "A Simple, Fast Dominance Algorithm" (2001): iterate
//! `idom(b) = intersect(processed predecessors)` in reverse postorder until nothing changes.
//! Heaps are nearly trees, so it settles in two or three passes.

/// A directed graph in compressed rows: the successors of node `v` are
/// `targets[start[v]..start[v + 1]]`.
pub struct Csr {
    pub start: Vec<u32>,
    pub targets: Vec<u32>,
}

impl Csr {
    pub fn from_edges(nodes: usize, edges: &[(u32, u32)]) -> Csr {
        let mut start = vec![0u32; nodes + 1];
        for &(from, _) in edges {
            start[from as usize + 1] += 1;
        }
        for i in 0..nodes {
            start[i + 1] += start[i];
        }
        let mut fill = start.clone();
        let mut targets = vec![0u32; edges.len()];
        for &(from, to) in edges {
            targets[fill[from as usize] as usize] = to;
            fill[from as usize] += 1;
        }
        Csr { start, targets }
    }

    pub fn nodes(&self) -> usize {
        self.start.len() - 1
    }

    #[inline]
    pub fn successors(&self, v: u32) -> &[u32] {
        &self.targets[self.start[v as usize] as usize..self.start[v as usize + 1] as usize]
    }

    pub fn reversed(&self) -> Csr {
        let mut edges = Vec::with_capacity(self.targets.len());
        for v in 0..self.nodes() as u32 {
            edges.extend(self.successors(v).iter().map(|&t| (t, v)));
        }
        Csr::from_edges(self.nodes(), &edges)
    }
}

pub const NONE: u32 = u32::MAX;

/// Nodes reachable from `entry`, in reverse postorder (entry first).
pub fn reverse_postorder(graph: &Csr, entry: u32) -> Vec<u32> {
    let n = graph.nodes();
    let mut seen = vec![false; n];
    let mut post = Vec::with_capacity(n);
    // (node, index of the next successor to visit)
    let mut stack: Vec<(u32, u32)> = vec![(entry, 0)];
    seen[entry as usize] = true;
    while let Some(top) = stack.last_mut() {
        let (v, next) = *top;
        let succ = graph.successors(v);
        if (next as usize) < succ.len() {
            top.1 += 1;
            let w = succ[next as usize];
            if !seen[w as usize] {
                seen[w as usize] = true;
                stack.push((w, 0));
            }
        } else {
            post.push(v);
            stack.pop();
        }
    }
    post.reverse();
    post
}

/// Immediate dominators (`NONE` for nodes not reachable from `entry`; `entry` dominates itself)
/// and the reverse postorder used.
pub fn dominators(graph: &Csr, entry: u32) -> (Vec<u32>, Vec<u32>) {
    let n = graph.nodes();
    let rpo = reverse_postorder(graph, entry);
    let mut order = vec![NONE; n];
    for (i, &v) in rpo.iter().enumerate() {
        order[v as usize] = i as u32;
    }
    let preds = graph.reversed();
    let mut idom = vec![NONE; n];
    idom[entry as usize] = entry;
    let mut changed = true;
    while changed {
        changed = false;
        for &b in &rpo[1..] {
            let mut new_idom = NONE;
            for &p in preds.successors(b) {
                if idom[p as usize] == NONE {
                    continue;
                }
                new_idom = if new_idom == NONE { p } else { intersect(&idom, &order, p, new_idom) };
            }
            if idom[b as usize] != new_idom {
                idom[b as usize] = new_idom;
                changed = true;
            }
        }
    }
    (idom, rpo)
}

fn intersect(idom: &[u32], order: &[u32], mut a: u32, mut b: u32) -> u32 {
    while a != b {
        while order[a as usize] > order[b as usize] {
            a = idom[a as usize];
        }
        while order[b as usize] > order[a as usize] {
            b = idom[b as usize];
        }
    }
    a
}

/// Breadth-first parents from `entry`: the shortest path to every reachable node.
pub fn shortest_path_parents(graph: &Csr, entry: u32) -> Vec<u32> {
    let mut parent = vec![NONE; graph.nodes()];
    parent[entry as usize] = entry;
    let mut queue = std::collections::VecDeque::from([entry]);
    while let Some(v) = queue.pop_front() {
        for &w in graph.successors(v) {
            if parent[w as usize] == NONE {
                parent[w as usize] = v;
                queue.push_back(w);
            }
        }
    }
    parent
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dominators_of_a_diamond_and_a_loop() {
        // 0 -> 1, 0 -> 2, 1 -> 3, 2 -> 3, 3 -> 4, 4 -> 3
        let g = Csr::from_edges(5, &[(0, 1), (0, 2), (1, 3), (2, 3), (3, 4), (4, 3)]);
        let (idom, rpo) = dominators(&g, 0);
        assert_eq!(idom, vec![0, 0, 0, 0, 3]);
        assert_eq!(rpo[0], 0);
        assert_eq!(rpo.len(), 5);
    }

    #[test]
    fn a_long_chain_needs_no_recursion() {
        let n = 200_000u32;
        let edges: Vec<_> = (0..n - 1).map(|i| (i, i + 1)).collect();
        let g = Csr::from_edges(n as usize, &edges);
        let (idom, _) = dominators(&g, 0);
        assert_eq!(idom[n as usize - 1], n - 2);
        assert_eq!(shortest_path_parents(&g, 0)[n as usize - 1], n - 2);
    }

    #[test]
    fn unreachable_nodes_have_no_dominator() {
        let g = Csr::from_edges(3, &[(0, 1), (2, 1)]);
        assert_eq!(dominators(&g, 0).0, vec![0, 0, NONE]);
    }
}
