"""_bridges"""
