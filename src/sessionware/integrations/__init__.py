"""Integrations with the frameworks people run: aiogram, python-telegram-bot, the OpenAI Agents SDK."""
