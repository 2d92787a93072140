# %% build a graph and shortest path
import networkx as nx
G = nx.Graph()
G.add_weighted_edges_from([("A", "B", 4), ("A", "C", 2), ("C", "B", 1), ("B", "D", 5), ("C", "D", 8)])
path = nx.shortest_path(G, "A", "D", weight="weight")
assert path == ["A", "C", "B", "D"]
nx.shortest_path_length(G, "A", "D", weight="weight")
# %% centrality on karate club
K = nx.karate_club_graph()
bc = nx.betweenness_centrality(K)
top = sorted(bc, key=bc.get, reverse=True)[:3]
print(top)
assert top[0] == 0
# %% draw the graph
import matplotlib.pyplot as plt
pos = nx.spring_layout(K, seed=1)
nx.draw(K, pos, with_labels=True, node_color="lightblue", node_size=300)
plt.show()
# %% communities
from networkx.algorithms import community
parts = community.greedy_modularity_communities(K)
assert len(parts) >= 2
[len(p) for p in parts]
# %% directed graph, pagerank and topological sort
D = nx.DiGraph([("a", "b"), ("b", "c"), ("a", "c"), ("c", "d")])
assert list(nx.topological_sort(D)) == ["a", "b", "c", "d"]
nx.pagerank(D)
# %% minimum spanning tree and pydot export
T = nx.minimum_spanning_tree(G)
assert sorted(T.edges()) == sorted([("A", "C"), ("C", "B"), ("B", "D")]) or T.number_of_edges() == 3
nx.drawing.nx_pydot.write_dot(T, "/mnt/data/mst.dot")
open("/mnt/data/mst.dot").read()[:80]
