"""Outbound campaigns: predictive, progressive and preview dialling.

campaign / campaign_store / controls   campaigns, their storage, supervisor changes
leads / lead_store / csv_import / dnc   leads, attempts, CSV import, do-not-call lists
rules                                   calling window, attempts, retry delays (pure)
agents                                  agent state from Asterisk queue events
estimates / pacing / engine             what to dial now (pure, on an injected clock)
runner / placement                      the async service and what the gateway provides
stats / window                          live figures and the rolling abandon window
simulation                              discrete-event call centre (bench and tests only)
"""
