"""Fault suite: each test reproduces a reliability defect with real ``paraspinal`` processes."""
