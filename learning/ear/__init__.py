"""EAR: a conversational recommender that estimates, acts and reflects (Lei et al., WSDM 2020) on MovieLens-100k."""
