"""_routing"""
