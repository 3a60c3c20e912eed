"""Tamper evidence: the event chain and the export folder's manifest (`manifest`),
and their check (`verify`).
"""
