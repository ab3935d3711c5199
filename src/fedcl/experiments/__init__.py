"""Experiments: the comparison with every baseline, the ablation table, sensitivity sweeps, heterogeneity,
corruption, attacks and privacy."""

from fedcl.experiments._attacks import ATTACK_SCENARIOS, attacks_report, check_attack_grid
from fedcl.experiments._audit import audit
from fedcl.experiments._benchmark import benchmark, named_methods
from fedcl.experiments._corruption import corruption, corruption_plan
from fedcl.experiments._drivers import ablation, compare, sweep_parameter
from fedcl.experiments._heterogeneity import heterogeneity
from fedcl.experiments._methods import Method, ablation_methods, shrink, unsupervised_methods
from fedcl.experiments._node_privacy import check_node_counts, node_privacy
from fedcl.experiments._privacy import check_epsilons, privacy

__all__ = ["ATTACK_SCENARIOS", "Method", "ablation", "ablation_methods", "attacks_report", "audit",
           "benchmark", "check_attack_grid", "check_epsilons", "check_node_counts", "compare", "corruption",
           "corruption_plan", "heterogeneity", "named_methods", "node_privacy", "privacy", "shrink",
           "sweep_parameter", "unsupervised_methods"]
