"""Integrations with the frameworks people run.

aiogram, python-telegram-bot, Pydantic AI, the OpenAI Agents SDK and Google ADK.
"""
