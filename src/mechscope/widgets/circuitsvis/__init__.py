"""CircuitsVis' functions, with its call signatures and argument names, returning mechscope
widgets: offline (no CDN), arrays as binary buffers, a static fallback in every mimebundle::

    from mechscope.widgets import circuitsvis as cv      # was: import circuitsvis as cv
    cv.attention.attention_patterns(tokens=str_tokens, attention=cache["pattern", 0][0])

Each function accepts what CircuitsVis 1.43 accepts (torch tensors, numpy arrays, nested
lists) and checks it: a ragged list or a shape that does not match ``tokens`` is a ValueError
naming the argument. Arguments past the fourth are keyword-only here (mechscope's rule).
Options with no effect on the mechscope widget are listed below; giving one a value other than
its default raises one UserWarning that names them.

=====================================  =======================  ==============================
function                               returns                  options with no effect
=====================================  =======================  ==============================
``attention.attention_patterns``       ``AttentionPatterns``    (none)
``attention.attention_heads``          ``Heatmap`` (a panel     ``negative_color``,
                                       per head)                ``positive_color``,
                                                                ``mask_upper_tri``
``attention.attention_pattern``        ``Heatmap``              ``negative_color``,
                                                                ``positive_color``,
                                                                ``show_axis_labels``,
                                                                ``mask_upper_tri``
``tokens.colored_tokens``              ``TokenActivations``     ``min_value``, ``max_value``,
                                                                ``negative_color``,
                                                                ``positive_color``
``tokens.colored_tokens_multi``        ``TokenActivations``     (none)
``topk_tokens.topk_tokens``            ``TokenActivations``     ``max_k`` (every token is
                                       (a feature per layer     sent), ``sample_labels``
                                       and neuron)
``topk_samples.topk_samples``          ``FeatureDashboard``     (none; samples with no
                                                                positive activation are not
                                                                listed)
=====================================  =======================  ==============================

Colours are mechscope's own perceptual maps (diverging at zero, or sequential for values in
[0, 1]); ``min_value`` / ``max_value`` fix the heatmaps' limits. Causal patterns are already
zero above the diagonal, so ``mask_upper_tri`` changes nothing there.
"""

from . import attention, tokens, topk_samples, topk_tokens

__all__ = ["attention", "tokens", "topk_samples", "topk_tokens"]
