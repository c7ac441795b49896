"""_jobs"""
