"""Prepaid calling cards for call shops: cards, PINs, vouchers, rate plans, live debit, CDRs.

A domain package over Redis. It never talks AMI: the gateway wires its services to the
FastAGI `prepaid` route and to AMI events, and gives it a `CallControl` (cut a call off,
play a warning) and an `EventSink` (MQTT). Money is integer minor units everywhere.
"""
