"""The paper's measurements and verdicts, one module per section (no plotting, no HTML).

=====================  =============================================  =======================
paper section          module                                         chapter
=====================  =============================================  =======================
§3-4 design            ``solu_repro.paper.s4_design``                 02-solu-design
§5 performance         ``solu_repro.paper.s5_performance``            03-performance
§6.1-6.2 (and §3.2)    ``solu_repro.paper.s6_interpretability``       04-interpretability-...
§6.2 over training     ``solu_repro.paper.s6_2_training``             04-interpretability-...
§6.3 neurons           ``solu_repro.paper.s6_3_neurons``              05-, 06-neurons-...
§6.4 LayerNorm         ``solu_repro.paper.s6_4_layernorm``            07-layernorm
=====================  =============================================  =======================

``claim`` holds the ``ClaimSpec``/``Claim`` types and the verdict rules every section shares;
``registry`` lists every claim in paper order. The book (``solu_repro.book``) gathers the
inputs (runs, scores, harvests), calls these functions and draws the results.
"""
