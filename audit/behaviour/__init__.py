"""The behavioural stage: run the model with the soft prompt on counterfactual probes."""
